#!/usr/bin/env python3
"""One day of papers as Hugging Face's daily-papers API serves them, for the bench scripts:
GET /api/daily_papers?date=&limit=&p= answers page p of the papers in PAPERS_JSON (a JSON list
in the API's format), `limit` to a page. The file is read at the first request, so a script may
start the server before it writes the file.

Usage: hf_day_server.py PAPERS_JSON PORT
"""

import http.server
import json
import sys
import urllib.parse

papers = None


class Day(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global papers
        if papers is None:
            papers = json.load(open(sys.argv[1]))
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        limit, page = int(q.get("limit", ["100"])[0]), int(q.get("p", ["0"])[0])
        body = json.dumps(papers[page * limit:(page + 1) * limit]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Day).serve_forever()
