"""The bank's rooms over its database, each usable alone over a db.engine.Database: encoders,
concepts (read), sentences (in and out), directions with their versions and tunings, the trash,
direction histories; rows.py holds the values they read and write. bank.Bank is their facade."""
