//! The SQLite store. (Implementation in progress.)
