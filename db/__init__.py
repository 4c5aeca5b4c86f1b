"""Storage for the direction bank: tables, engines, sessions and schema migrations."""
