"""The pure routing core: no I/O, no clock; every entry point takes `now`."""
