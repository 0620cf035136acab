// Our abseil (20220623) has no RETURN_IF_ERROR; these are the only two macros we need.
#ifndef MAPKV_STATUS_MACROS_H_
#define MAPKV_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MAPKV_RETURN_IF_ERROR(expr)                                      \
  do {                                                                   \
    if (absl::Status _mapkv_s = (expr); !_mapkv_s.ok()) return _mapkv_s; \
  } while (0)

#define MAPKV_CONCAT_INNER_(a, b) a##b
#define MAPKV_CONCAT_(a, b) MAPKV_CONCAT_INNER_(a, b)
#define MAPKV_ASSIGN_OR_RETURN(lhs, expr) \
  MAPKV_ASSIGN_OR_RETURN_IMPL_(MAPKV_CONCAT_(_mapkv_or_, __LINE__), lhs, expr)
#define MAPKV_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)

#endif  // MAPKV_STATUS_MACROS_H_
