"""One function per job (score edits, tune a direction) that both faces, the CLI and the studio, call."""
