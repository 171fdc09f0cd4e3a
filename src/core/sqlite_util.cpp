#include "core/sqlite_util.h"

#include <sqlite3.h>

namespace cogumi::sqlite {

Stmt::~Stmt() { sqlite3_finalize(s); }

std::string why(sqlite3* db, int rc) {
  std::string w = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if ((rc & 0xff) == SQLITE_NOTADB) w = "not a SQLite database (" + w + ")";
  return w;
}

int exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  sqlite3_free(err);
  return rc;
}

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t), size_t(sqlite3_column_bytes(s, i))) : std::string();
}

namespace {

template <class F>
int query(sqlite3* db, const char* sql, F&& read) {
  Stmt st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st.s, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(st.s);
  if (rc == SQLITE_ROW) read(st.s);
  return rc;
}

}  // namespace

int query_int(sqlite3* db, const char* sql, int* out) {
  return query(db, sql, [&](sqlite3_stmt* s) { *out = sqlite3_column_int(s, 0); });
}

int query_text(sqlite3* db, const char* sql, std::string* out) {
  return query(db, sql, [&](sqlite3_stmt* s) { *out = column_text(s, 0); });
}

}  // namespace cogumi::sqlite
