"""The dashboard: read-only web pages over one study (`archscout serve`) and their static export
(`archscout report --site DIR`).

- `study.py`   opens a study for reading only (SQLite `mode=ro`, no migrations run);
- `data.py`    study-level page data (overview, leaderboard, trends, failures) as JSON-ready dicts;
- `tree.py`    the lineage tree and its tidy layout, computed server-side;
- `arch.py`    one architecture's page data;
- `render.py`  Jinja2 + Pygments rendering shared by the server and the export;
- `app.py`     the FastAPI app: routes, `.json` twins, token check, security headers;
- `export.py`  the same pages as static files that open from disk.

Nothing here writes to a study or evaluates anything.
"""
