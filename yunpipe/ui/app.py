"""The dashboard's web app (Flask): its pages, the live parts they refresh, and the one action
that change AWS, retrying a step's dead letters and queuing what a step's input holds (each
asked for on a page of its own, then POSTed).

Security, as Jupyter does it: the server listens on 127.0.0.1 only, and every request must carry
the random token of this run of `yunpipe ui`, in the URL (`?token=`, which then sets a cookie for
the pages' own links and refreshes) or that cookie. An action must carry it in its form as well:
another site's page can make the browser send the cookie, never read the token, so it cannot
drive the dashboard. A Host other than the loopback's is refused too (DNS rebinding). No
credentials reach a page: results are downloaded through the server, not by presigned URLs.
"""
from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, abort, redirect, render_template, request, stream_with_context, url_for
from markupsafe import Markup

from yunpipe.engine.state import find_step
from yunpipe.errors import InputError, NotFoundError, YunpipeError
from yunpipe.operations.backfill import RetryOptions, SubmitOptions, retry, submit, wake_launcher
from yunpipe.operations.report import build as build_report
from yunpipe.ui import files, pictures, pipelines, runs

# How often a page's live parts ask again (milliseconds).
REFRESH_MS = 2000
CHUNK = 1024 * 1024


def create_app(token: str, port: int) -> Flask:
    """The app for one run of `yunpipe ui`: `token` guards every request, `port` is the loopback
    port it serves (the Hosts it answers to)."""
    app = Flask(__name__)
    cookie = f"yunpipe-ui-{port}"
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}

    def given(value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), token.encode())

    @app.before_request
    def guard() -> Any:
        if request.host not in hosts:
            abort(403, "this dashboard answers on 127.0.0.1 only")
        if request.method == "POST":
            if not given(request.form.get("token")):
                abort(403, "an action needs the dashboard's token in its form")
        elif not (given(request.args.get("token")) or given(request.cookies.get(cookie))):
            abort(403, "open the dashboard with the URL `yunpipe ui` printed (it holds its token)")
        return None

    @app.after_request
    def remember(response: Response) -> Response:
        if given(request.args.get("token")):
            response.set_cookie(cookie, token, httponly=True, samesite="Strict")
        # Nothing of the page is fetched elsewhere, nor may it be framed by another site.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(YunpipeError)
    def explained(error: YunpipeError) -> tuple[str, int]:
        # What the request named is not there (404) or not valid (400); else AWS said no (502).
        code = 404 if isinstance(error, NotFoundError) else 400 if isinstance(error, InputError) else 502
        return render_template("error.html", message=str(error)), code

    @app.errorhandler(403)
    def refused(error: Any) -> tuple[str, int]:
        return render_template("error.html", message=f"Forbidden: {error.description}"), 403

    @app.context_processor
    def common() -> dict[str, Any]:
        return {"token": token, "refresh_ms": REFRESH_MS}

    _pages(app)
    _actions(app)
    return app


def _pages(app: Flask) -> None:
    @app.get("/")
    def index() -> str:
        return render_template("pipelines.html", pipelines=pipelines.every_health())

    @app.get("/pipelines/<name>")
    def pipeline(name: str) -> str:
        summary, _ = pipelines.open_pipeline(name)
        layout = pipelines.layout_of(summary)
        svg = pictures.graph_svg(layout, name)
        return render_template("pipeline.html", summary=summary, layout=layout, svg=Markup(svg) if svg else None,
                               live=pipelines.live(name))

    @app.get("/pipelines/<name>/live")
    def live(name: str) -> str:
        return render_template("pipeline_live.html", live=pipelines.live(name))

    @app.get("/pipelines/<name>/runs/<run>")
    def run(name: str, run: str) -> str:
        summary, reader = pipelines.open_pipeline(name)
        names, opened = runs.run_names(reader, summary)
        if run not in names:
            raise NotFoundError(f"no run '{run}' of pipeline '{name}'")
        found = runs.read_run(reader, summary, run, run in opened)
        # The report and charts of `yunpipe report --html`, in the page.
        report = build_report(reader, summary, run)
        return render_template("run.html", summary=summary, run=found, report=report.summary,
                               bars=found.bars([s.name for s in summary.steps],
                                               pipelines.gathers(pipelines.layout_of(summary))),
                               charts=pictures.run_charts(report, [s.name for s in summary.steps]))

    @app.get("/pipelines/<name>/failure")
    def failure(name: str) -> str:
        summary, reader = pipelines.open_pipeline(name)
        found = files.failure(reader, summary, request.args.get("report", ""))
        return render_template("failure.html", summary=summary, failure=found,
                               replay_command=files.replay_command(summary, found.key))

    @app.get("/pipelines/<name>/results")
    def results(name: str) -> str:
        summary, reader = pipelines.open_pipeline(name)
        step = request.args.get("step") or None
        page = max(0, request.args.get("page", 0, type=int))
        bucket, found, total = files.results(reader, summary, step, page)
        return render_template("results.html", summary=summary, step=step, bucket=bucket, results=found,
                               total=total, page=page, page_size=files.RESULTS_PAGE)

    @app.get("/pipelines/<name>/results/download")
    def download(name: str) -> Response:
        summary, reader = pipelines.open_pipeline(name)
        key = request.args.get("key", "")
        body, kind = files.download(reader, summary, request.args.get("step") or None, key)
        chunks: Callable[[], Any] = lambda: iter(lambda: body.read(CHUNK), b"")  # noqa: E731
        response = Response(stream_with_context(chunks()), content_type=kind)
        response.headers["Content-Disposition"] = f"attachment; filename=\"{_filename(key)}\""
        return response


def _filename(key: str) -> str:
    """The key's last part as a header value can carry it (printable ASCII, no quote)."""
    name = key.rsplit("/", 1)[-1] or "result"
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


def _actions(app: Flask) -> None:
    """The two actions that change AWS, each asked for on a page of its own first (GET), then done
    by that page's form (POST, with the token): retry a step's dead letters, queue what a step's
    input bucket holds (for a gather step, one gather message)."""
    @app.get("/pipelines/<name>/steps/<step>/retry")
    def confirm_retry(name: str, step: str) -> str:
        summary, _ = pipelines.open_pipeline(name)
        found = find_step(summary, step, "retry")
        return render_template("confirm.html", summary=summary, back=request.args.get("back", ""),
                               action=url_for("do_retry", name=name, step=step),
                               question=f"Retry step {found.name}'s dead letters?", button="Yes, retry them",
                               explanation=f"Every message in {found.dead_letter_queue} goes back to {found.queue}, "
                               "and the step's launcher starts workers for them. Workers started from an older "
                               "task definition are stopped first. Their failure reports stay.")

    @app.post("/pipelines/<name>/steps/<step>/retry")
    def do_retry(name: str, step: str) -> Any:
        summary, _ = pipelines.open_pipeline(name)
        find_step(summary, step, "retry")
        done = list(retry(RetryOptions(name, step)))
        return render_template("retried.html", summary=summary, retried=done)

    @app.get("/pipelines/<name>/steps/<step>/submit")
    def confirm_submit(name: str, step: str) -> str:
        summary, _ = pipelines.open_pipeline(name)
        found = find_step(summary, step, "submit")
        gather = pipelines.layout_of(summary).step(found.name).gather
        what = ("one gather message: the step runs once over everything" if gather else
                "a message for each object: the step runs once per object, even those it has done")
        return render_template("confirm.html", summary=summary, back=request.args.get("back", ""),
                               action=url_for("do_submit", name=name, step=step),
                               question=f"Queue what s3://{found.input_bucket} holds to step {found.name}?",
                               button="Yes, queue it", explanation=f"It queues {what}, and starts the step's launcher.")

    @app.post("/pipelines/<name>/steps/<step>/submit")
    def do_submit(name: str, step: str) -> Any:
        summary, _ = pipelines.open_pipeline(name)
        found = find_step(summary, step, "submit")
        gather = pipelines.layout_of(summary).step(found.name).gather
        submitted = submit(SubmitOptions(name, step=found.name, gather=gather))
        if submitted.count or submitted.gathered:
            wake_launcher(submitted.aws, found)
        return render_template("submitted.html", summary=summary, submitted=submitted)

    @app.get("/favicon.ico")
    def favicon() -> Any:
        return redirect(url_for("static", filename="yunpipe.svg"))
