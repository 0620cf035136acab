// Uses the installed C API: writes a key in a fresh database, reads it back, and prints
// "mapkv <version>: <key>=<value>", or what failed.
#include <stdio.h>
#include <string.h>

#include "mapkv/c.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DATABASE\n", argv[0]);
    return 2;
  }
  char* err = NULL;
  mapkv_db* db = NULL;
  mapkv_status s = mapkv_open(argv[1], NULL, &db, &err);
  if (s == MAPKV_OK) s = mapkv_put(db, "hello", 5, "world", 5, &err);
  char value[16];
  size_t len = 0;
  if (s == MAPKV_OK) s = mapkv_get(db, "hello", 5, value, sizeof(value), &len, &err);
  if (s != MAPKV_OK) {
    fprintf(stderr, "%s: %s\n", mapkv_status_name(s), err != NULL ? err : "");
    mapkv_free(err);
    mapkv_close(db, NULL);
    return 1;
  }
  printf("mapkv %s: hello=%.*s\n", mapkv_version(), (int)len, value);
  return mapkv_close(db, NULL) == MAPKV_OK ? 0 : 1;
}
