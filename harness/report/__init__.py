"""What people look at: the self-contained HTML report of a run, the comparison of runs, and the live view and
chart page in Locust's web UI; charts, colours and formats shared by all three. Shows the judge's checks as they are."""
