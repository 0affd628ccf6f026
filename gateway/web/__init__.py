"""The web UI: server-rendered Jinja2 pages, local static assets, Vietnamese and English."""
