"""Operations drills: real PostgreSQL clusters of their own, real backups, real restores."""
