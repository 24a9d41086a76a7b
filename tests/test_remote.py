"""A store read where it lies: served over HTTP (with range requests, as S3, the Hugging
Face Hub or any static web server serve files) by a local server started here."""

from __future__ import annotations

import functools
import http.server
import os
import threading

import pytest
from click.testing import CliRunner

from ce.cli import cli
from ce.query.sql import connect
from ce.store.errors import StoreError
from ce.store.remote import RemoteStore

from .test_sql import write_neighbors, write_store


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """The standard library's file server plus HTTP range requests."""

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        header = self.headers.get("Range")
        if not header or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, _, last = header.removeprefix("bytes=").partition("-")
        start = int(first) if first else size - int(last)
        stop = min(int(last), size - 1) if first and last else size - 1
        f = open(path, "rb")  # noqa: SIM115 (the handler closes it after copying)
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(stop - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = stop - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(remaining))


@pytest.fixture
def served(tmp_path):
    """(local Store, its URL): a store with predictions and neighbour lists, served."""
    store = write_store(tmp_path / "store", {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_neighbors(store, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    handler = functools.partial(RangeHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield store, f"http://127.0.0.1:{server.server_address[1]}/store"
    server.shutdown()


QUERIES = [
    "select * from error_agreement() order by all",
    "select * from knn_agreement(2) order by all",
    "select model, k_max from list_limits order by all",
    "select run_id, status from runs order by all",
]


def test_a_served_store_answers_like_the_local_one(served):
    local, url = served
    remote = RemoteStore(url)
    for sql in QUERIES:
        assert connect(remote).sql(sql).fetchall() == connect(local).sql(sql).fetchall()


def test_ce_query_compare_sweep_and_report_take_a_url(served, tmp_path):
    local, url = served
    runner = CliRunner()
    for args in (
        ["query", "select * from error_agreement()"],
        ["compare", "--table", "2", "--k", "2"],
        ["sweep", "--k", "1,2"],
    ):
        there = runner.invoke(cli, [*args, "--store", url, "--format", "csv"])
        here = runner.invoke(cli, [*args, "--store", str(local.root), "--format", "csv"])
        assert there.exit_code == 0, there.output
        assert there.output == here.output
    report = runner.invoke(cli, ["report", "-o", str(tmp_path / "r.html"), "--store", url, "--k", "2"])
    assert report.exit_code == 0, report.output
    assert url in (tmp_path / "r.html").read_text()


def test_a_remote_store_is_read_only_and_a_wrong_url_is_one_line(served, tiny_models):
    _, url = served
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["extract", "--model", str(tiny_models["classification"]), "--dataset", "sst2-dev", "--store", url],
    )
    assert result.exit_code != 0 and "a URL works with ce query" in result.output
    result = runner.invoke(cli, ["query", "select 1", "--store", url + "/nothing-here"])
    assert result.exit_code != 0 and "no ce store at" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["query", "select 1", "--store", "s3://bucket/store"])
    assert result.exit_code != 0 and "needs s3fs" in result.output
    with pytest.raises(StoreError, match="read-only"), RemoteStore(url).run("x", {}):
        pass
