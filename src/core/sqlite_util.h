// cogumi/core: the few SQLite pieces the stores share (runtime/memory.cpp's session store and
// eval/exec_cache.cpp's sandbox-run cache): an owned statement, error text, one-shot statements
// and queries. Each store keeps its own error messages (they name the store and its file).
#pragma once

#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace cogumi::sqlite {

// A prepared statement, finalized when it goes.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
};

// Why a call failed: the connection's message (or, without one, the code's), and for a file that
// is not a database "not a SQLite database (...)".
std::string why(sqlite3* db, int rc);
// sqlite3_exec of SQL (one or more statements, no rows wanted); its result code.
int exec(sqlite3* db, const char* sql);
// Column i of the current row as text ("" for NULL), embedded NULs kept.
std::string column_text(sqlite3_stmt* s, int i);
// The first column of the first row SQL gives, as an int or as text; the result code of the step
// (SQLITE_ROW when there was a row, which is the only case *out is set).
int query_int(sqlite3* db, const char* sql, int* out);
int query_text(sqlite3* db, const char* sql, std::string* out);

}  // namespace cogumi::sqlite
