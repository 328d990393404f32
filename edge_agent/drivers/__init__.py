"""PLC drivers: one folder per protocol (its settings, driver and checks), found by `registry`.

`base` is the interface every driver honours, `runtime` what they share at run time.
"""
