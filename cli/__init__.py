"""The ``bss2-calib`` command line: a thin click layer over chipsim, calib and infer."""
