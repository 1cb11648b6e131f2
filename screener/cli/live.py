"""`screener live`: a camera, stream or video file analysed as it plays."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import EXIT_FAILURES, EXIT_OK, app, fail, say
from screener.cli.options import (
    AllFacesOption,
    ConfigOption,
    DbOption,
    DebugOption,
    EveryOption,
    ModelOption,
    QuietOption,
    RulesOption,
    build_settings,
    configure_logging,
    load_analyzer,
    open_store,
)


@app.command()
def live(
    source: Annotated[
        str, typer.Argument(help="Camera index, device path (/dev/video0), stream URL "
                            "(rtsp://, http://, ...) or video file.")
    ] = "0",
    fast: Annotated[
        bool, typer.Option("--fast", help="Read a file as fast as it can be analysed, every "
                           "frame, instead of at its own frame rate.")
    ] = False,
    no_window: Annotated[
        bool, typer.Option("--no-window", help="Show no window (also when there is no display).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON object per line: per analysed frame, "
                           "per alert, and a last summary.")
    ] = False,
    record: Annotated[
        Path | None, typer.Option("--record", help="Write the annotated video (H.264 .mp4).",
                                  dir_okay=False)
    ] = None,
    student: Annotated[
        str | None, typer.Option("--student", help="Store the session under this student when "
                                 "it ends, so that it shows in `history` and reports.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="With --student: re-render that "
                                  "student's report page in this folder.")
    ] = None,
    window_s: Annotated[
        float | None, typer.Option("--window", help="Seconds the default rule set's level "
                                   "looks back [default: 60].", min=1, show_default=False)
    ] = None,
    db: DbOption = None,
    rules: RulesOption = None,
    every: EveryOption = None,
    model: ModelOption = None,
    all_faces: AllFacesOption = False,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Analyse a camera, stream or video file as it plays: faces, emotions, alerts.

    With --rules seed the original program's messages ("Sad Emotion Detected", then "Less /
    Moderate / More Stress or Depression Detected"); with other rule sets the level of the last
    --window seconds whenever it changes. q, Esc or Ctrl-C stop. Nothing is stored without
    --student or --record. Exit code 0 when the session ended normally, 1 when the source was
    lost midway (what was seen is still stored) or the recording failed, 2 when the source
    cannot be opened.
    """
    configure_logging(debug, quiet)
    from dataclasses import replace

    from screener.cli.reports import write_reports
    from screener.live.monitor import LiveAnalyzer, for_student, open_grabber, run_live
    from screener.live.output import (
        AlertPrinter,
        JsonLines,
        Recording,
        Window,
        display_problem,
        summary_lines,
    )
    from screener.live.source import SourceError, parse_source

    if out is not None and student is None:
        raise fail("--out re-renders a student's page: give --student too")
    settings = build_settings(config, db, rules, every, model, all_faces)
    if window_s is not None:
        settings = settings.replace(live=replace(settings.live, window_s=window_s))
    if record is not None and not os.access(record.parent.resolve(), os.W_OK):
        raise fail(f"cannot write the recording in {record.parent}")
    try:
        spec = parse_source(source)
    except SourceError as exc:
        raise fail(str(exc)) from None
    store = open_store(settings, create=True) if student is not None else None
    # One face at a time: a second model thread would only spin, taking a core from the
    # reader and the face search.
    analyzer = load_analyzer(settings, threads=1)
    try:
        grabber = open_grabber(spec, settings, fast)
    except SourceError as exc:
        raise fail(str(exc)) from None

    def note(message: str) -> None:
        if not quiet:
            say(message, err=True)

    sinks: list = [JsonLines() if as_json else AlertPrinter()]
    recording = None
    if record is not None:
        recording = Recording(record, grabber.source_fps or 30.0, every_frame=fast)
        sinks.append(recording)
    if not no_window:
        problem = display_problem()
        if problem is None:
            try:
                sinks.append(Window(f"screener live: {spec.label}"))
            except Exception as exc:  # cv2.error, or a Qt plugin that will not load
                problem = f"the window could not be opened ({exc})"
        if problem:
            note(f"{problem}: continuing without a window")
    note(f"live from {spec.label}" + (": q or Esc in the window" if len(sinks) > 1 and
                                      not isinstance(sinks[-1], Recording) else ":")
         + " Ctrl-C to stop")
    live_analyzer = LiveAnalyzer(analyzer, background_faces=not (fast and spec.is_file))
    summary = run_live(grabber, live_analyzer, spec, sinks)
    stored = None
    if store is not None:
        from screener.trends.baseline import save_with_baseline

        result = for_student(summary.result, student)  # type: ignore[arg-type]
        try:
            stored, _ = save_with_baseline(store, result, analyzer.rules)
        except Exception as exc:
            raise fail(f"could not store the session: {exc}", EXIT_FAILURES) from None
        if out is not None:
            write_reports(store, out, settings, [student])
    if as_json:
        document = summary.document()
        document.update({"student": student, "stored_session": stored,
                         "recording": str(record) if record else None,
                         "recording_skipped_frames": recording.skipped if recording else None})
        say(json.dumps(document))
    elif not quiet:
        for line in summary_lines(summary):
            say(line)
        if recording is not None:
            say(f"recorded {record}" + (f" ({recording.skipped} analysed frames left out:"
                       " the encoder was behind)" if recording.skipped else ""))
        if stored is not None:
            say(f"stored as session {summary.result.job.session_id} of {student}; "
                       f"database: {store.safe_url}")  # type: ignore[union-attr]
    failed = False
    if summary.stopped == "lost":
        say(f"source lost: {summary.reason}", err=True, fg=typer.colors.RED)
        failed = True
    if recording is not None and recording.error:
        say(f"recording failed: {recording.error}", err=True, fg=typer.colors.RED)
        failed = True
    raise typer.Exit(EXIT_FAILURES if failed else EXIT_OK)
