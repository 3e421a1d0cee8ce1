"""The regional picture (issue 16 item 3): the sitrep a region compiles by hand, live, for commissioners and admins."""
