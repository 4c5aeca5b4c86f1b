"""The bank's rooms over its database: encoders, concepts and sentences, statistics, directions with
their versions and tunings, the trash, checks and the work queue (the Bank in bank.py is their facade)."""
