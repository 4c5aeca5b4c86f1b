"""One function per job that both faces, the CLI and the studio, call: add a concept, make a
direction, edit, evaluate, tune; and the jobs over a whole bank (check and repair, the work queue)."""
