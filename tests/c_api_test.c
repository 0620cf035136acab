// The C API (include/mapkv/c.h), from a program written in C (C11, no POSIX headers, so that the
// Windows build runs it too): every function, its happy path and its failure paths, each failure
// with the code and a message that names the file or the key.
//
// Usage: c_api_test [DIR]   (files are made in DIR, "." by default, and removed at the end)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapkv/c.h"

static const char* g_dir = ".";
static char* msg = NULL;  // the message of the last call made through EXPECT

// Fails the current test (returns 1 from it) with the file, line and condition.
#define CHECK(cond)                                                                             \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "%s:%d: in %s: CHECK(%s) failed\n", __FILE__, __LINE__, __func__, #cond); \
      return 1;                                                                                 \
    }                                                                                           \
  } while (0)

// Runs `call`, whose last argument is &msg, and checks its status and that a message comes with
// every failure and none with success.
#define EXPECT(expected, call)                                                                 \
  do {                                                                                         \
    mapkv_free(msg);                                                                           \
    msg = NULL;                                                                                \
    mapkv_status got_ = (call);                                                                \
    if (got_ != (expected)) {                                                                  \
      fprintf(stderr, "%s:%d: in %s: %s\n  returned %s, expected %s; message: %s\n", __FILE__, \
              __LINE__, __func__, #call, mapkv_status_name(got_), mapkv_status_name(expected), \
              msg != NULL ? msg : "(none)");                                                   \
      return 1;                                                                                \
    }                                                                                          \
    if ((got_ == MAPKV_OK) != (msg == NULL)) {                                                 \
      fprintf(stderr, "%s:%d: in %s: %s\n  returned %s with message %s\n", __FILE__, __LINE__, \
              __func__, #call, mapkv_status_name(got_), msg != NULL ? msg : "(none)");         \
      return 1;                                                                                \
    }                                                                                          \
  } while (0)
#define OK(call) EXPECT(MAPKV_OK, call)

// The last message contains `part`.
#define CHECK_MSG(part)                                                                    \
  do {                                                                                     \
    if (msg == NULL || strstr(msg, (part)) == NULL) {                                      \
      fprintf(stderr, "%s:%d: in %s: the message does not contain \"%s\": %s\n", __FILE__, \
              __LINE__, __func__, (part), msg != NULL ? msg : "(none)");                   \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

// A file name of this test in g_dir; a file of that name left by an earlier run is removed.
static const char* Path(char* out, size_t n, const char* name) {
  snprintf(out, n, "%s/c_api_test_%s.mapkv", g_dir, name);
  remove(out);
  return out;
}

// Options every test uses: a small file, no huge pages, short lock waits.
static mapkv_options* SmallOptions(void) {
  mapkv_options* opts = mapkv_options_create();
  if (opts == NULL) return NULL;
  mapkv_options_set_create_if_missing(opts, 1);
  mapkv_options_set_max_file_size(opts, 64u << 20);
  mapkv_options_set_initial_file_size(opts, 1u << 20);
  mapkv_options_set_initial_index_slots(opts, 64);
  mapkv_options_set_huge_pages(opts, 0);
  mapkv_options_set_lock_timeout_ms(opts, 2000);
  return opts;
}

static int Same(const void* data, size_t len, const char* expected) {
  return len == strlen(expected) && (len == 0 || memcmp(data, expected, len) == 0);
}

static int TestStatusVersionFree(void) {
  CHECK(strcmp(mapkv_status_name(MAPKV_OK), "OK") == 0);
  CHECK(strcmp(mapkv_status_name(MAPKV_NOT_FOUND), "NOT_FOUND") == 0);
  CHECK(strcmp(mapkv_status_name(MAPKV_UNAUTHENTICATED), "UNAUTHENTICATED") == 0);
  CHECK(strcmp(mapkv_status_name((mapkv_status)17), "UNKNOWN_STATUS") == 0);
  CHECK(strcmp(mapkv_status_name((mapkv_status)-1), "UNKNOWN_STATUS") == 0);
  CHECK(strcmp(mapkv_version(), MAPKV_EXPECTED_VERSION) == 0);
  mapkv_free(NULL);
  // Every destructor takes NULL.
  mapkv_options_destroy(NULL);
  mapkv_compact_options_destroy(NULL);
  mapkv_cache_options_destroy(NULL);
  mapkv_read_end(NULL);
  mapkv_write_abort(NULL);
  mapkv_cache_close(NULL);
  OK(mapkv_close(NULL, &msg));
  // Setters on NULL do nothing.
  mapkv_options_set_read_only(NULL, 1);
  mapkv_compact_options_set_batch_bytes(NULL, 1);
  mapkv_cache_options_set_capacity(NULL, 1);
  CHECK(mapkv_path(NULL) == NULL);
  CHECK(mapkv_cache_path(NULL) == NULL);
  return 0;
}

static int g_log_lines = 0;
static void InfoLog(void* user, const char* line, size_t len) {
  (void)user;
  (void)line;
  (void)len;
  ++g_log_lines;
}

static int TestDatabase(void) {
  char path[512];
  Path(path, sizeof(path), "db");
  mapkv_options* opts = SmallOptions();
  CHECK(opts != NULL);
  mapkv_options_set_durability(opts, MAPKV_DURABILITY_PERIODIC);
  mapkv_options_set_checkpoint_interval_ms(opts, 60000);
  mapkv_options_set_checkpoint_bytes(opts, 1u << 20);
  mapkv_options_set_verify_checksums(opts, 1);
  mapkv_options_set_file_mode(opts, 0600);
  mapkv_options_set_kind(opts, MAPKV_KIND_DATABASE);
  mapkv_options_set_info_log(opts, InfoLog, NULL);
  mapkv_db* db = NULL;
  OK(mapkv_open(path, opts, &db, &msg));
  mapkv_options_destroy(opts);
  CHECK(db != NULL);
  CHECK(strcmp(mapkv_path(db), path) == 0);

  char buf[64];
  size_t len = 0;
  OK(mapkv_put(db, "alpha", 5, "one", 3, &msg));
  OK(mapkv_get(db, "alpha", 5, buf, sizeof(buf), &len, &msg));
  CHECK(Same(buf, len, "one"));
  // Too small a buffer: the size needed, the buffer untouched.
  memset(buf, 'x', sizeof(buf));
  EXPECT(MAPKV_OUT_OF_RANGE, mapkv_get(db, "alpha", 5, buf, 2, &len, &msg));
  CHECK(len == 3);
  CHECK(buf[0] == 'x' && buf[1] == 'x');
  CHECK_MSG(path);
  CHECK_MSG("\"alpha\"");
  // The size alone.
  EXPECT(MAPKV_OUT_OF_RANGE, mapkv_get(db, "alpha", 5, NULL, 0, &len, &msg));
  CHECK(len == 3);
  // Absent.
  EXPECT(MAPKV_NOT_FOUND, mapkv_get(db, "missing", 7, buf, sizeof(buf), &len, &msg));
  CHECK(len == 0);
  CHECK_MSG(path);
  CHECK_MSG("\"missing\"");
  // Binary keys and values; an empty value into no buffer.
  OK(mapkv_put(db, "b\0in", 4, "\0\1\2", 3, &msg));
  OK(mapkv_get(db, "b\0in", 4, buf, sizeof(buf), &len, &msg));
  CHECK(len == 3 && memcmp(buf, "\0\1\2", 3) == 0);
  EXPECT(MAPKV_NOT_FOUND, mapkv_get(db, "b", 1, buf, sizeof(buf), &len, &msg));
  OK(mapkv_put(db, "empty", 5, NULL, 0, &msg));
  OK(mapkv_get(db, "empty", 5, NULL, 0, &len, &msg));
  CHECK(len == 0);
  // Delete, and delete of an absent key.
  OK(mapkv_delete(db, "alpha", 5, &msg));
  EXPECT(MAPKV_NOT_FOUND, mapkv_get(db, "alpha", 5, buf, sizeof(buf), &len, &msg));
  OK(mapkv_delete(db, "alpha", 5, &msg));
  // Bad keys and arguments.
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_put(db, "", 0, "v", 1, &msg));
  CHECK_MSG(path);
  CHECK_MSG("keys are 1 to 65535 bytes");
  char* big_key = (char*)calloc(MAPKV_MAX_KEY_SIZE + 1, 1);
  CHECK(big_key != NULL);
  memset(big_key, 'k', MAPKV_MAX_KEY_SIZE + 1);
  mapkv_status s = mapkv_get(db, big_key, MAPKV_MAX_KEY_SIZE + 1, buf, sizeof(buf), &len, NULL);
  CHECK(s == MAPKV_INVALID_ARGUMENT);  // with no message asked for
  EXPECT(MAPKV_NOT_FOUND, mapkv_get(db, big_key, MAPKV_MAX_KEY_SIZE, buf, sizeof(buf), &len, &msg));
  CHECK_MSG("...");  // a long key is cut short in the message
  free(big_key);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_put(db, NULL, 3, "v", 1, &msg));
  CHECK_MSG("key is NULL");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_put(db, "k", 1, NULL, 1, &msg));
  CHECK_MSG("value is NULL");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_delete(db, NULL, 1, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_get(db, "k", 1, buf, sizeof(buf), NULL, &msg));
  CHECK_MSG("value_len");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_get(db, "k", 1, NULL, 8, &len, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_get(NULL, "k", 1, buf, sizeof(buf), &len, &msg));
  CHECK_MSG("mapkv_get: db is NULL");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_put(NULL, "k", 1, "v", 1, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_delete(NULL, "k", 1, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_checkpoint(NULL, &msg));

  // Checkpoint and statistics.
  OK(mapkv_checkpoint(db, &msg));
  mapkv_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  OK(mapkv_get_stats(db, &st, &msg));
  CHECK(st.size == sizeof(st));
  CHECK(st.keys == 2);  // "b\0in" and "empty"
  CHECK(st.checkpoints >= 1);
  CHECK(st.last_checkpoint_unix_ms > 0);
  CHECK(st.max_file_size == (64u << 20));
  CHECK(st.file_size >= (1u << 20));
  CHECK(st.commits >= 4);
  CHECK(st.open_handles == 1);
  CHECK(st.format_version >= 1);
  CHECK(st.is_cache == 0);
  CHECK(st.index_capacity >= 64 && st.index_used >= 2 && st.index_load > 0);
  CHECK(st.live_bytes > 0 && st.log_bytes >= st.live_bytes && st.garbage_bytes > 0);
  CHECK(st.disk_bytes >= st.log_bytes && st.disk_bytes <= st.file_size);  // the last field
  // A caller of an older header gets the fields it knows; one of a newer, ours and zeros.
  memset(&st, 0xAB, sizeof(st));
  st.size = offsetof(mapkv_stats, file_size);
  OK(mapkv_get_stats(db, &st, &msg));
  CHECK(st.size == offsetof(mapkv_stats, file_size) && st.keys == 2);
  CHECK(st.file_size == 0xABABABABABABABABull);
  struct {
    mapkv_stats stats;
    uint64_t later_field;
  } newer;
  memset(&newer, 0xAB, sizeof(newer));
  newer.stats.size = sizeof(newer);
  OK(mapkv_get_stats(db, &newer.stats, &msg));
  CHECK(newer.stats.size == sizeof(mapkv_stats) && newer.later_field == 0);
  st.size = 0;
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_get_stats(db, &st, &msg));
  CHECK_MSG("stats->size is 0");
  st.size = (size_t)-1;  // never set: refused, and nothing is written past the struct
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_get_stats(db, &st, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_get_stats(db, NULL, &msg));

  OK(mapkv_verify(db, NULL, NULL, &msg));
  OK(mapkv_close(db, &msg));
  (void)g_log_lines;  // only an unclean stop logs; the setter is what is exercised here
  return 0;
}

static int g_foreach_calls = 0;
static int g_foreach_bad = 0;
static int CountAndStop(void* user, const void* key, size_t key_len, const void* value,
                        size_t value_len) {
  ++g_foreach_calls;
  if (key_len != 2 || memcmp(key, "k", 1) != 0 || (value_len > 0 && value == NULL)) {
    ++g_foreach_bad;
  }
  return *(const int*)user;  // 0: stop
}

static int TestReadTxn(void) {
  char path[512];
  Path(path, sizeof(path), "read");
  mapkv_options* opts = SmallOptions();
  CHECK(opts != NULL);
  mapkv_db* db = NULL;
  OK(mapkv_open(path, opts, &db, &msg));
  mapkv_options_destroy(opts);
  OK(mapkv_put(db, "k1", 2, "v1", 2, &msg));
  OK(mapkv_put(db, "k2", 2, "value2", 6, &msg));
  OK(mapkv_put(db, "k3", 2, "", 0, &msg));

  mapkv_read_txn* txn = NULL;
  OK(mapkv_read_begin(db, &txn, &msg));
  CHECK(txn != NULL);
  const void* v = NULL;
  size_t len = 0;
  OK(mapkv_read_get(txn, "k2", 2, &v, &len, &msg));
  CHECK(Same(v, len, "value2"));
  OK(mapkv_read_get(txn, "k3", 2, &v, &len, &msg));
  CHECK(len == 0);
  EXPECT(MAPKV_NOT_FOUND, mapkv_read_get(txn, "nope", 4, &v, &len, &msg));
  CHECK(v == NULL && len == 0);
  CHECK_MSG(path);
  CHECK_MSG("\"nope\"");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_read_get(txn, "", 0, &v, &len, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_read_get(txn, "k2", 2, NULL, &len, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_read_get(NULL, "k2", 2, &v, &len, &msg));

  uint64_t count = 0;
  OK(mapkv_read_count(txn, &count, &msg));
  CHECK(count == 3);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_read_count(txn, NULL, &msg));

  int go_on = 1;
  g_foreach_calls = 0;
  OK(mapkv_read_foreach(txn, CountAndStop, &go_on, &msg));
  CHECK(g_foreach_calls == 3 && g_foreach_bad == 0);
  go_on = 0;
  g_foreach_calls = 0;
  OK(mapkv_read_foreach(txn, CountAndStop, &go_on, &msg));
  CHECK(g_foreach_calls == 1);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_read_foreach(txn, NULL, NULL, &msg));

  const void* keys[5] = {"k1", "zz", "", "k2", NULL};
  size_t key_lens[5] = {2, 2, 0, 2, 1};
  const void* values[5];
  size_t value_lens[5];
  mapkv_status statuses[5];
  OK(mapkv_read_multi_get(txn, 5, keys, key_lens, values, value_lens, statuses, &msg));
  CHECK(statuses[0] == MAPKV_OK && Same(values[0], value_lens[0], "v1"));
  CHECK(statuses[1] == MAPKV_NOT_FOUND && values[1] == NULL && value_lens[1] == 0);
  CHECK(statuses[2] == MAPKV_INVALID_ARGUMENT);
  CHECK(statuses[3] == MAPKV_OK && Same(values[3], value_lens[3], "value2"));
  CHECK(statuses[4] == MAPKV_INVALID_ARGUMENT);
  OK(mapkv_read_multi_get(txn, 0, NULL, NULL, NULL, NULL, NULL, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT,
         mapkv_read_multi_get(txn, 1, keys, key_lens, values, value_lens, NULL, &msg));

  // A snapshot: a commit of this thread goes through, and the transaction keeps its view.
  OK(mapkv_put(db, "k2", 2, "changed", 7, &msg));
  OK(mapkv_read_get(txn, "k2", 2, &v, &len, &msg));
  CHECK(Same(v, len, "value2"));
  mapkv_stats stats;
  memset(&stats, 0, sizeof(stats));
  stats.size = sizeof(stats);
  OK(mapkv_get_stats(db, &stats, &msg));
  CHECK(stats.snapshots == 1 && stats.snapshot_pinned_bytes > 0);

  // A transaction keeps its handle open.
  EXPECT(MAPKV_FAILED_PRECONDITION, mapkv_close(db, &msg));
  CHECK_MSG(path);
  CHECK_MSG("1 transaction is still open");
  mapkv_read_end(txn);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_read_begin(db, NULL, &msg));
  OK(mapkv_close(db, &msg));

  // Past max_snapshot_bytes, its reads fail: "snapshot too old".
  opts = SmallOptions();
  CHECK(opts != NULL);
  mapkv_options_set_max_snapshot_bytes(opts, 1024);
  OK(mapkv_open(path, opts, &db, &msg));
  mapkv_options_destroy(opts);
  OK(mapkv_read_begin(db, &txn, &msg));
  char big[2048];
  memset(big, 'b', sizeof(big));
  OK(mapkv_put(db, "k1", 2, big, sizeof(big), &msg));
  EXPECT(MAPKV_FAILED_PRECONDITION, mapkv_read_get(txn, "k1", 2, &v, &len, &msg));
  CHECK_MSG("snapshot too old");
  mapkv_read_end(txn);
  OK(mapkv_read_begin(db, &txn, &msg));
  OK(mapkv_read_get(txn, "k1", 2, &v, &len, &msg));
  CHECK(len == sizeof(big));
  mapkv_read_end(txn);
  OK(mapkv_close(db, &msg));
  return 0;
}

static int TestWriteTxn(void) {
  char path[512];
  Path(path, sizeof(path), "write");
  mapkv_options* opts = SmallOptions();
  CHECK(opts != NULL);
  mapkv_db* db = NULL;
  OK(mapkv_open(path, opts, &db, &msg));
  OK(mapkv_put(db, "b", 1, "old", 3, &msg));

  mapkv_write_txn* txn = NULL;
  OK(mapkv_write_begin(db, &txn, &msg));
  CHECK(txn != NULL);
  OK(mapkv_write_put(txn, "a", 1, "new", 3, &msg));
  const void* v = NULL;
  size_t len = 0;
  OK(mapkv_write_get(txn, "a", 1, &v, &len, &msg));  // its own write
  CHECK(Same(v, len, "new"));
  OK(mapkv_write_get(txn, "b", 1, &v, &len, &msg));  // the committed state
  CHECK(Same(v, len, "old"));
  OK(mapkv_write_delete(txn, "b", 1, &msg));
  EXPECT(MAPKV_NOT_FOUND, mapkv_write_get(txn, "b", 1, &v, &len, &msg));
  CHECK_MSG("\"b\"");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_write_put(txn, "", 0, "x", 1, &msg));
  CHECK_MSG(path);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_write_delete(txn, NULL, 2, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_write_get(txn, "a", 1, NULL, &len, &msg));
  // Invisible to others until the commit.
  char buf[16];
  EXPECT(MAPKV_NOT_FOUND, mapkv_get(db, "a", 1, buf, sizeof(buf), &len, &msg));

  // A second handle (as another process would) waits for the writer, up to its lock_timeout.
  mapkv_options_set_lock_timeout_ms(opts, 100);
  mapkv_db* other = NULL;
  OK(mapkv_open(path, opts, &other, &msg));
  mapkv_write_txn* blocked = NULL;
  EXPECT(MAPKV_DEADLINE_EXCEEDED, mapkv_write_begin(other, &blocked, &msg));
  CHECK(blocked == NULL);
  CHECK_MSG("pid");
  EXPECT(MAPKV_DEADLINE_EXCEEDED, mapkv_put(other, "c", 1, "x", 1, &msg));
  OK(mapkv_close(other, &msg));

  EXPECT(MAPKV_FAILED_PRECONDITION, mapkv_close(db, &msg));
  OK(mapkv_write_commit(txn, &msg));  // frees txn
  OK(mapkv_get(db, "a", 1, buf, sizeof(buf), &len, &msg));
  CHECK(Same(buf, len, "new"));
  EXPECT(MAPKV_NOT_FOUND, mapkv_get(db, "b", 1, buf, sizeof(buf), &len, &msg));

  // Abort drops everything.
  OK(mapkv_write_begin(db, &txn, &msg));
  OK(mapkv_write_put(txn, "c", 1, "gone", 4, &msg));
  mapkv_write_abort(txn);
  EXPECT(MAPKV_NOT_FOUND, mapkv_get(db, "c", 1, buf, sizeof(buf), &len, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_write_commit(NULL, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_write_begin(NULL, &txn, &msg));
  CHECK(txn == NULL);
  OK(mapkv_close(db, &msg));
  mapkv_options_destroy(opts);
  return 0;
}

static int TestOpenErrors(void) {
  char path[512];
  mapkv_options* opts = SmallOptions();
  CHECK(opts != NULL);
  mapkv_db* db = NULL;

  // A file that is not a mapkv file.
  Path(path, sizeof(path), "text");
  FILE* f = fopen(path, "wb");
  CHECK(f != NULL);
  for (int i = 0; i < 200; ++i) fputs("this is not a database\n", f);
  fclose(f);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_open(path, opts, &db, &msg));
  CHECK(db == NULL);
  CHECK_MSG(path);
  CHECK_MSG("not a mapkv database");
  remove(path);

  // Missing, without create_if_missing.
  Path(path, sizeof(path), "missing");
  mapkv_options_set_create_if_missing(opts, 0);
  EXPECT(MAPKV_NOT_FOUND, mapkv_open(path, opts, &db, &msg));
  CHECK_MSG(path);
  mapkv_options_set_create_if_missing(opts, 1);

  // error_if_exists; exclusive while open elsewhere; read-only refuses writes.
  Path(path, sizeof(path), "modes");
  OK(mapkv_open(path, opts, &db, &msg));
  mapkv_options* other = SmallOptions();
  CHECK(other != NULL);
  mapkv_options_set_error_if_exists(other, 1);
  mapkv_db* second = NULL;
  EXPECT(MAPKV_ALREADY_EXISTS, mapkv_open(path, other, &second, &msg));
  CHECK_MSG(path);
  mapkv_options_set_error_if_exists(other, 0);
  mapkv_options_set_exclusive(other, 1);
  EXPECT(MAPKV_FAILED_PRECONDITION, mapkv_open(path, other, &second, &msg));
  CHECK_MSG(path);
  mapkv_options_set_exclusive(other, 0);
  mapkv_options_set_read_only(other, 1);
  OK(mapkv_open(path, other, &second, &msg));
  EXPECT(MAPKV_PERMISSION_DENIED, mapkv_put(second, "k", 1, "v", 1, &msg));
  CHECK_MSG(path);
  OK(mapkv_close(second, &msg));
  OK(mapkv_close(db, &msg));
  mapkv_options_destroy(other);

  // Options out of range, reported by the open that uses them.
  mapkv_options_set_durability(opts, (mapkv_durability)7);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_open(path, opts, &db, &msg));
  CHECK_MSG(path);
  CHECK_MSG("durability 7");
  mapkv_options_set_durability(opts, MAPKV_DURABILITY_SYNC);
  mapkv_options_set_kind(opts, (mapkv_file_kind)9);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_open(path, opts, &db, &msg));
  CHECK_MSG("kind 9");
  mapkv_options_set_kind(opts, MAPKV_KIND_DATABASE);
  mapkv_options_set_lock_timeout_ms(opts, MAPKV_MAX_DURATION_MS + 1);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_open(path, opts, &db, &msg));
  CHECK_MSG("lock_timeout_ms");
  mapkv_options_set_lock_timeout_ms(opts, 2000);
  mapkv_options_set_create_format_version(opts, 3);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_open(path, opts, &db, &msg));
  CHECK_MSG("create_format_version 3");
  {
    char old_path[4096];
    mapkv_stats st;
    Path(old_path, sizeof(old_path), "version4");
    mapkv_options_set_create_format_version(opts, 4);
    OK(mapkv_open(old_path, opts, &db, &msg));
    st.size = sizeof(st);
    OK(mapkv_get_stats(db, &st, &msg));
    CHECK(st.format_version == 4);
    OK(mapkv_close(db, &msg));
  }
  mapkv_options_set_create_format_version(opts, 0);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_open(NULL, opts, &db, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_open(path, opts, NULL, &msg));

  // Past max_file_size: ResourceExhausted, and what was committed stays.
  Path(path, sizeof(path), "full");
  mapkv_options_set_max_file_size(opts, 4u << 20);
  OK(mapkv_open(path, opts, &db, &msg));  // kSync, set above
  const size_t chunk = 1u << 20;
  char* value = (char*)malloc(chunk);
  CHECK(value != NULL);
  memset(value, 'v', chunk);
  mapkv_status s = MAPKV_OK;
  int stored = 0;
  for (int i = 0; i < 8 && s == MAPKV_OK; ++i) {
    char key[16];
    snprintf(key, sizeof(key), "big%d", i);
    mapkv_free(msg);
    msg = NULL;
    s = mapkv_put(db, key, strlen(key), value, chunk, &msg);
    if (s == MAPKV_OK) ++stored;
  }
  free(value);
  CHECK(s == MAPKV_RESOURCE_EXHAUSTED);
  CHECK_MSG(path);
  CHECK(stored >= 1);
  size_t len = 0;
  EXPECT(MAPKV_OUT_OF_RANGE, mapkv_get(db, "big0", 4, NULL, 0, &len, &msg));
  CHECK(len == chunk);
  OK(mapkv_delete(db, "big0", 4, &msg));  // deletes still work in a full file
  OK(mapkv_close(db, &msg));
  mapkv_options_destroy(opts);
  return 0;
}

static int g_problems = 0;
static void CountProblem(void* user, uint64_t offset, const char* kind, const char* detail) {
  (void)user;
  (void)offset;
  if (kind != NULL && detail != NULL && kind[0] != '\0') ++g_problems;
}

// A damaged record: Verify reports it (DataLoss, with each problem), and so does a Get of it.
static int TestVerifyDamage(void) {
  char path[512];
  Path(path, sizeof(path), "damaged");
  mapkv_options* opts = SmallOptions();
  CHECK(opts != NULL);
  mapkv_db* db = NULL;
  OK(mapkv_open(path, opts, &db, &msg));
  const char marker[] = "<<the value that will be damaged>>";
  OK(mapkv_put(db, "victim", 6, marker, sizeof(marker) - 1, &msg));
  OK(mapkv_put(db, "bystander", 9, "fine", 4, &msg));
  OK(mapkv_close(db, &msg));

  FILE* f = fopen(path, "r+b");
  CHECK(f != NULL);
  CHECK(fseek(f, 0, SEEK_END) == 0);
  const long size = ftell(f);
  CHECK(size > 0);
  char* bytes = (char*)malloc((size_t)size);
  CHECK(bytes != NULL);
  CHECK(fseek(f, 0, SEEK_SET) == 0);
  CHECK(fread(bytes, 1, (size_t)size, f) == (size_t)size);
  long at = -1;
  for (long i = 0; i + (long)sizeof(marker) - 1 <= size; ++i) {
    if (memcmp(bytes + i, marker, sizeof(marker) - 1) == 0) {
      at = i;
      break;
    }
  }
  free(bytes);
  CHECK(at > 0);
  CHECK(fseek(f, at + 5, SEEK_SET) == 0);
  CHECK(fputc('#', f) != EOF);
  fclose(f);

  OK(mapkv_open(path, opts, &db, &msg));
  g_problems = 0;
  EXPECT(MAPKV_DATA_LOSS, mapkv_verify(db, CountProblem, NULL, &msg));
  CHECK(g_problems >= 1);
  EXPECT(MAPKV_DATA_LOSS, mapkv_verify(db, NULL, NULL, &msg));
  char buf[64];
  size_t len = 0;
  EXPECT(MAPKV_DATA_LOSS, mapkv_get(db, "victim", 6, buf, sizeof(buf), &len, &msg));
  CHECK_MSG(path);
  OK(mapkv_get(db, "bystander", 9, buf, sizeof(buf), &len, &msg));
  CHECK(Same(buf, len, "fine"));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_verify(NULL, NULL, NULL, &msg));
  OK(mapkv_close(db, &msg));
  mapkv_options_destroy(opts);
  return 0;
}

static int g_progress_calls = 0;
static int g_progress_bad = 0;
static int g_saw_replace = 0;
static void Progress(const mapkv_compact_progress* p, void* user) {
  ++g_progress_calls;
  if (user != &g_progress_calls || p->size != sizeof(*p) || p->keys_done > p->keys_total) {
    ++g_progress_bad;
  }
  if (p->phase == MAPKV_COMPACT_REPLACE) g_saw_replace = 1;
}

static int TestCompact(void) {
  char src[512], dst[512];
  Path(src, sizeof(src), "compact_src");
  Path(dst, sizeof(dst), "compact_dst");
  mapkv_options* opts = SmallOptions();
  CHECK(opts != NULL);
  mapkv_db* db = NULL;
  OK(mapkv_open(src, opts, &db, &msg));
  char key[32], value[64];
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 200; ++i) {
      snprintf(key, sizeof(key), "key%03d", i);
      snprintf(value, sizeof(value), "value %d of round %d", i, round);
      OK(mapkv_put(db, key, strlen(key), value, strlen(value), &msg));
    }
  }
  // Open here: compacted in place online, and the handle goes on with the new file (where the
  // OS cannot rename over a mapped file, refused, naming the file).
  mapkv_compact_result result;
  memset(&result, 0, sizeof(result));
  result.size = sizeof(result);
#ifdef _WIN32
  EXPECT(MAPKV_FAILED_PRECONDITION, mapkv_compact(src, NULL, NULL, &result, &msg));
  CHECK_MSG("c_api_test_compact_src.mapkv");  // compaction names the file by its full path
  CHECK_MSG("1 other handle");
#else
  OK(mapkv_compact(src, NULL, NULL, &result, &msg));
  CHECK(result.in_place && result.keys == 200 && result.size_after <= result.size_before);
  {
    char got[64];
    size_t got_len = 0;
    OK(mapkv_get(db, "key007", 6, got, sizeof(got), &got_len, &msg));
    CHECK(got_len == strlen("value 7 of round 2") && memcmp(got, "value 7 of round 2", got_len) == 0);
    // The database's history: one compaction, whose copy is all that this file's log holds.
    mapkv_stats st;
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    OK(mapkv_get_stats(db, &st, &msg));
    CHECK(st.compactions == 1 && st.bytes_relocated == st.log_bytes - 64 * 1024);
    CHECK(st.bytes_written > st.bytes_relocated && st.write_amplification > 1.0);
    // Round 2 again, through the handle, now on the new file: garbage for what follows.
    for (int i = 0; i < 200; ++i) {
      snprintf(key, sizeof(key), "key%03d", i);
      snprintf(value, sizeof(value), "value %d of round %d", i, 2);
      OK(mapkv_put(db, key, strlen(key), value, strlen(value), &msg));
    }
  }
#endif
  OK(mapkv_close(db, &msg));

  mapkv_compact_options* copts = mapkv_compact_options_create();
  CHECK(copts != NULL);
  mapkv_compact_options_set_progress(copts, Progress, &g_progress_calls);
  mapkv_compact_options_set_lock_timeout_ms(copts, 2000);
  mapkv_compact_options_set_batch_bytes(copts, 1u << 20);
  OK(mapkv_compact(src, dst, copts, &result, &msg));
  CHECK(g_progress_calls >= 2 && g_progress_bad == 0 && g_saw_replace);
  CHECK(result.size == sizeof(result));
  CHECK(result.in_place == 0 && result.keys == 200);
  CHECK(result.size_before > 0 && result.size_after > 0 && result.garbage_before > 0);
  CHECK(result.live_bytes > 0 && result.removed_leftovers == 0);

  OK(mapkv_open(dst, opts, &db, &msg));
  size_t len = 0;
  OK(mapkv_get(db, "key123", 6, value, sizeof(value), &len, &msg));
  CHECK(Same(value, len, "value 123 of round 2"));
  mapkv_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  OK(mapkv_get_stats(db, &st, &msg));
  CHECK(st.keys == 200 && st.garbage_bytes < result.garbage_before);
  OK(mapkv_close(db, &msg));

  // In place, with the defaults and no result; then the failures.
  OK(mapkv_compact(src, NULL, NULL, NULL, &msg));
  OK(mapkv_compact(src, "", NULL, NULL, &msg));
  EXPECT(MAPKV_ALREADY_EXISTS, mapkv_compact(src, dst, copts, &result, &msg));
  CHECK_MSG("c_api_test_compact_dst.mapkv");
  char missing[512];
  Path(missing, sizeof(missing), "compact_missing");
  EXPECT(MAPKV_NOT_FOUND, mapkv_compact(missing, dst, NULL, NULL, &msg));
  CHECK_MSG("c_api_test_compact_missing.mapkv");
  result.size = 0;
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_compact(src, NULL, NULL, &result, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_compact(NULL, dst, NULL, NULL, &msg));
  mapkv_compact_options_set_lock_timeout_ms(copts, MAPKV_MAX_DURATION_MS + 1);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_compact(src, NULL, copts, NULL, &msg));
  CHECK_MSG("lock_timeout_ms");
  mapkv_compact_options_destroy(copts);
  mapkv_options_destroy(opts);
  return 0;
}

static int64_t NowMs(void* user) { return *(const int64_t*)user; }

static int g_computes = 0;
static mapkv_status ComputeValue(void* user, mapkv_buf* out) {
  ++g_computes;
  const char* value = (const char*)user;
  return mapkv_buf_set(out, value, strlen(value));
}
static mapkv_status ComputeFails(void* user, mapkv_buf* out) {
  ++g_computes;
  (void)mapkv_buf_set(out, "ignored", 7);
  return *(const mapkv_status*)user;
}
static mapkv_status ComputeNothing(void* user, mapkv_buf* out) {
  (void)user;
  (void)out;
  ++g_computes;
  return MAPKV_OK;
}
static mapkv_status ComputeBadArgs(void* user, mapkv_buf* out) {
  (void)user;
  (void)out;
  ++g_computes;
  if (mapkv_buf_set(NULL, "x", 1) != MAPKV_INVALID_ARGUMENT) return MAPKV_INTERNAL;
  if (mapkv_buf_set(out, NULL, 1) != MAPKV_INVALID_ARGUMENT) return MAPKV_INTERNAL;
  return mapkv_buf_set(out, NULL, 0);
}

static int TestCache(void) {
  char path[512];
  Path(path, sizeof(path), "cache");
  int64_t now = 1700000000000;
  mapkv_options* db_opts = SmallOptions();
  CHECK(db_opts != NULL);
  mapkv_cache_options* opts = mapkv_cache_options_create();
  CHECK(opts != NULL);
  mapkv_cache_options_set_db_options(opts, db_opts);
  mapkv_cache_options_set_capacity(opts, 8u << 20);
  mapkv_cache_options_set_compute_timeout_ms(opts, 2000);
  mapkv_cache_options_set_clock(opts, NowMs, &now);
  mapkv_cache* cache = NULL;
  OK(mapkv_cache_open(path, opts, &cache, &msg));
  CHECK(cache != NULL);
  CHECK(strcmp(mapkv_cache_path(cache), path) == 0);

  // Expiry by the injected clock: there at ttl - 1 ms, gone at ttl.
  char buf[64];
  size_t len = 0;
  OK(mapkv_cache_put(cache, "page", 4, "<html>", 6, 1000, &msg));
  OK(mapkv_cache_put(cache, "forever", 7, "x", 1, 0, &msg));
  OK(mapkv_cache_get(cache, "page", 4, buf, sizeof(buf), &len, &msg));
  CHECK(Same(buf, len, "<html>"));
  EXPECT(MAPKV_OUT_OF_RANGE, mapkv_cache_get(cache, "page", 4, buf, 3, &len, &msg));
  CHECK(len == 6);
  CHECK_MSG("\"page\"");
  now += 999;
  OK(mapkv_cache_get(cache, "page", 4, buf, sizeof(buf), &len, &msg));
  now += 1;
  EXPECT(MAPKV_NOT_FOUND, mapkv_cache_get(cache, "page", 4, buf, sizeof(buf), &len, &msg));
  CHECK_MSG(path);
  CHECK_MSG("\"page\"");
  now += 1000000;
  OK(mapkv_cache_get(cache, "forever", 7, buf, sizeof(buf), &len, &msg));
  OK(mapkv_cache_delete(cache, "forever", 7, &msg));
  EXPECT(MAPKV_NOT_FOUND, mapkv_cache_get(cache, "forever", 7, buf, sizeof(buf), &len, &msg));
  OK(mapkv_cache_delete(cache, "forever", 7, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_put(cache, "", 0, "v", 1, 0, &msg));
  CHECK_MSG(path);
  EXPECT(MAPKV_INVALID_ARGUMENT,
         mapkv_cache_put(cache, "k", 1, "v", 1, MAPKV_MAX_DURATION_MS + 1, &msg));
  CHECK_MSG("ttl_ms");
  CHECK_MSG("\"k\"");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_delete(cache, NULL, 1, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_get(cache, "k", 1, buf, sizeof(buf), NULL, &msg));

  // Compute once: the second call is a hit.
  g_computes = 0;
  OK(mapkv_cache_get_or_compute(cache, "user/42", 7, 0, ComputeValue, "Ada", buf, sizeof(buf), &len,
                                &msg));
  CHECK(Same(buf, len, "Ada") && g_computes == 1);
  OK(mapkv_cache_get_or_compute(cache, "user/42", 7, 0, ComputeValue, "Bob", buf, sizeof(buf), &len,
                                &msg));
  CHECK(Same(buf, len, "Ada") && g_computes == 1);
  // A failing function: its code, a message naming the key, nothing stored.
  mapkv_status failure = MAPKV_UNAVAILABLE;
  EXPECT(MAPKV_UNAVAILABLE, mapkv_cache_get_or_compute(cache, "user/7", 6, 0, ComputeFails,
                                                       &failure, buf, sizeof(buf), &len, &msg));
  CHECK(g_computes == 2);
  CHECK_MSG(path);
  CHECK_MSG("\"user/7\"");
  CHECK_MSG("UNAVAILABLE");
  EXPECT(MAPKV_NOT_FOUND, mapkv_cache_get(cache, "user/7", 6, buf, sizeof(buf), &len, &msg));
  failure = (mapkv_status)1234;  // no code at all
  EXPECT(MAPKV_UNKNOWN, mapkv_cache_get_or_compute(cache, "user/7", 6, 0, ComputeFails, &failure,
                                                   buf, sizeof(buf), &len, &msg));
  CHECK_MSG("code 1234");
  // The next caller computes; too small a buffer still stores the value.
  EXPECT(MAPKV_OUT_OF_RANGE, mapkv_cache_get_or_compute(cache, "user/7", 6, 0, ComputeValue,
                                                        "Grace Hopper", buf, 4, &len, &msg));
  CHECK(len == 12 && g_computes == 4);
  OK(mapkv_cache_get_or_compute(cache, "user/7", 6, 0, ComputeValue, "someone else", buf,
                                sizeof(buf), &len, &msg));
  CHECK(Same(buf, len, "Grace Hopper") && g_computes == 4);
  // A function that sets nothing stores an empty value; mapkv_buf_set checks its arguments.
  OK(mapkv_cache_get_or_compute(cache, "empty", 5, 0, ComputeNothing, NULL, NULL, 0, &len, &msg));
  CHECK(len == 0 && g_computes == 5);
  OK(mapkv_cache_get_or_compute(cache, "args", 4, 0, ComputeBadArgs, NULL, NULL, 0, &len, &msg));
  CHECK(len == 0 && g_computes == 6);
  EXPECT(MAPKV_INVALID_ARGUMENT,
         mapkv_cache_get_or_compute(cache, "k", 1, 0, NULL, NULL, buf, sizeof(buf), &len, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_get_or_compute(cache, "", 0, 0, ComputeValue, "v", buf,
                                                            sizeof(buf), &len, &msg));
  // Expiry of computed values.
  OK(mapkv_cache_get_or_compute(cache, "short", 5, 10, ComputeValue, "1", buf, sizeof(buf), &len,
                                &msg));
  now += 10;
  OK(mapkv_cache_get_or_compute(cache, "short", 5, 10, ComputeValue, "2", buf, sizeof(buf), &len,
                                &msg));
  CHECK(Same(buf, len, "2") && g_computes == 8);

  // Counters.
  int64_t n = 0;
  OK(mapkv_cache_increment(cache, "hits", 4, 5, 0, &n, &msg));
  CHECK(n == 5);
  OK(mapkv_cache_increment(cache, "hits", 4, -8, 0, &n, &msg));
  CHECK(n == -3);
  OK(mapkv_cache_increment(cache, "hits", 4, 1, 0, NULL, &msg));
  OK(mapkv_cache_get(cache, "hits", 4, buf, sizeof(buf), &len, &msg));
  CHECK(Same(buf, len, "-2"));
  OK(mapkv_cache_put(cache, "name", 4, "Ada", 3, 0, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_increment(cache, "name", 4, 1, 0, &n, &msg));
  CHECK_MSG(path);
  CHECK_MSG("\"name\"");
  CHECK_MSG("not a decimal integer");
  OK(mapkv_cache_put(cache, "max", 3, "9223372036854775807", 19, 0, &msg));
  EXPECT(MAPKV_OUT_OF_RANGE, mapkv_cache_increment(cache, "max", 3, 1, 0, &n, &msg));
  CHECK_MSG("\"max\"");
  OK(mapkv_cache_get(cache, "max", 3, buf, sizeof(buf), &len, &msg));
  CHECK(Same(buf, len, "9223372036854775807"));  // unchanged
  EXPECT(MAPKV_INVALID_ARGUMENT,
         mapkv_cache_increment(cache, "k", 1, 1, MAPKV_MAX_DURATION_MS + 1, &n, &msg));

  // Statistics: this handle's counts (the file is new), and the file underneath.
  OK(mapkv_cache_checkpoint(cache, &msg));
  mapkv_cache_stats cs;
  mapkv_stats ds;
  memset(&cs, 0, sizeof(cs));
  memset(&ds, 0, sizeof(ds));
  cs.size = sizeof(cs);
  ds.size = sizeof(ds);
  OK(mapkv_cache_get_stats(cache, &cs, &ds, &msg));
  CHECK(cs.size == sizeof(cs) && ds.size == sizeof(ds));
  CHECK(cs.hits >= 5 && cs.misses >= 5 && cs.expirations >= 1 && cs.computes == 8);
  CHECK(cs.waits == 0 && cs.takeovers == 0 && cs.evictions == 0);
  CHECK(ds.is_cache == 1 && ds.keys >= 8 && ds.checkpoints >= 1);
  CHECK(ds.cache_capacity == (8u << 20) && ds.evictions == 0);
  OK(mapkv_cache_get_stats(cache, &cs, NULL, &msg));
  ds.size = 0;
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_get_stats(cache, &cs, &ds, &msg));
  CHECK_MSG("db_stats->size is 0");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_get_stats(cache, NULL, NULL, &msg));
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_checkpoint(NULL, &msg));

  // A read-only handle cannot take a lease (nor write).
  mapkv_options_set_read_only(db_opts, 1);
  mapkv_cache_options_set_db_options(opts, db_opts);
  mapkv_cache* reader = NULL;
  OK(mapkv_cache_open(path, opts, &reader, &msg));
  OK(mapkv_cache_get(reader, "user/42", 7, buf, sizeof(buf), &len, &msg));
  EXPECT(MAPKV_PERMISSION_DENIED, mapkv_cache_get_or_compute(reader, "new", 3, 0, ComputeValue, "v",
                                                             buf, sizeof(buf), &len, &msg));
  CHECK_MSG(path);
  EXPECT(MAPKV_PERMISSION_DENIED, mapkv_cache_put(reader, "k", 1, "v", 1, 0, &msg));
  mapkv_cache_close(reader);

  // The capacity holds: 12 MiB of entries through the 8 MiB file evict the oldest.
  {
    static char big[4096];
    char key[32];
    memset(big, 'b', sizeof(big));
    for (int i = 0; i < 3072; ++i) {
      const int n = snprintf(key, sizeof(key), "fill/%d", i);
      OK(mapkv_cache_put(cache, key, (size_t)n, big, sizeof(big), 0, &msg));
    }
    ds.size = sizeof(ds);
    OK(mapkv_cache_get_stats(cache, &cs, &ds, &msg));
    CHECK(cs.evictions > 0 && ds.evictions == cs.evictions);
    CHECK(ds.file_size <= (8u << 20));
  }
  mapkv_cache_close(cache);
  mapkv_cache_options_set_compute_timeout_ms(opts, MAPKV_MAX_DURATION_MS + 1);
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_open(path, opts, &cache, &msg));
  CHECK(cache == NULL);
  CHECK_MSG("compute_timeout_ms");
  EXPECT(MAPKV_INVALID_ARGUMENT, mapkv_cache_open(NULL, NULL, &cache, &msg));
  mapkv_cache_options_destroy(opts);
  mapkv_options_destroy(db_opts);
  return 0;
}

// A database and a cache each refuse to open as the other; kind ANY opens either.
static int TestFileKinds(void) {
  char db_path[512], cache_path[512];
  Path(db_path, sizeof(db_path), "kind_db");
  Path(cache_path, sizeof(cache_path), "kind_cache");
  mapkv_db* db = NULL;
  mapkv_cache* cache = NULL;
  OK(mapkv_open(db_path, NULL, &db, &msg));  // the defaults
  OK(mapkv_close(db, &msg));
  OK(mapkv_cache_open(cache_path, NULL, &cache, &msg));
  mapkv_cache_close(cache);

  EXPECT(MAPKV_FAILED_PRECONDITION, mapkv_cache_open(db_path, NULL, &cache, &msg));
  CHECK(cache == NULL);
  CHECK_MSG(db_path);
  EXPECT(MAPKV_FAILED_PRECONDITION, mapkv_open(cache_path, NULL, &db, &msg));
  CHECK(db == NULL);
  CHECK_MSG(cache_path);

  mapkv_options* opts = mapkv_options_create();
  CHECK(opts != NULL);
  mapkv_options_set_kind(opts, MAPKV_KIND_ANY);
  OK(mapkv_open(cache_path, opts, &db, &msg));
  mapkv_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  OK(mapkv_get_stats(db, &st, &msg));
  CHECK(st.is_cache == 1);
  OK(mapkv_close(db, &msg));
  mapkv_options_destroy(opts);
  return 0;
}

static void RemoveFiles(void) {
  static const char* const kNames[] = {
      "db",      "read",      "write",       "text",        "missing",         "modes",
      "full",    "damaged",   "compact_src", "compact_dst", "compact_missing", "cache",
      "kind_db", "kind_cache"};
  char path[512];
  for (size_t i = 0; i < sizeof(kNames) / sizeof(kNames[0]); ++i) {
    Path(path, sizeof(path), kNames[i]);
  }
}

int main(int argc, char** argv) {
  if (argc > 1) g_dir = argv[1];
  struct {
    const char* name;
    int (*fn)(void);
  } tests[] = {
      {"StatusVersionFree", TestStatusVersionFree},
      {"Database", TestDatabase},
      {"ReadTxn", TestReadTxn},
      {"WriteTxn", TestWriteTxn},
      {"OpenErrors", TestOpenErrors},
      {"VerifyDamage", TestVerifyDamage},
      {"Compact", TestCompact},
      {"Cache", TestCache},
      {"FileKinds", TestFileKinds},
  };
  int failed = 0;
  const size_t n = sizeof(tests) / sizeof(tests[0]);
  for (size_t i = 0; i < n; ++i) {
    const int result = tests[i].fn();
    printf("[%s] %s\n", result == 0 ? "  OK  " : "FAILED", tests[i].name);
    fflush(stdout);
    failed += result != 0;
  }
  mapkv_free(msg);
  msg = NULL;
  if (failed == 0) RemoveFiles();  // a failure leaves its files to look at
  printf("%d of %u C API tests failed\n", failed, (unsigned)n);
  return failed == 0 ? 0 : 1;
}
