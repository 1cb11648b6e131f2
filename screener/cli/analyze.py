"""`screener analyze`: one video, no database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from screener.cli.app import EXIT_FAILURES, app, fail, say
from screener.cli.options import (
    AllFacesOption,
    ConfigOption,
    DebugOption,
    EveryOption,
    ModelOption,
    QuietOption,
    RulesOption,
    build_settings,
    configure_logging,
    load_analyzer,
    show_progress,
)


@app.command()
def analyze(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="One video file.", exists=True,
                                          dir_okay=False)],
    csv_path: Annotated[
        Path | None, typer.Option("--csv", metavar="FILE|-",
                                  help="Write per-frame rows as CSV ('-' for stdout).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (frames, metrics, level).")
    ] = False,
    rules: RulesOption = None,
    every: EveryOption = None,
    model: ModelOption = None,
    all_faces: AllFacesOption = False,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Analyse one video without the database: per-frame emotions, metrics and the level."""
    configure_logging(debug, quiet)
    from screener.privacy import write_private
    from screener.scanning.analysis_output import frames_csv, result_document, summary_text
    from screener.terminal import printable
    from screener.video.discover import job_for
    from screener.video.keyframes import VideoReadError

    settings = build_settings(config, None, rules, every, model, all_faces)
    analyzer = load_analyzer(settings)
    job = job_for(video, video.parent)
    bar = None
    if show_progress(quiet) and not (as_json or csv_path == Path("-")):
        from tqdm import tqdm

        bar = tqdm(unit=" key frames", desc=printable(video.name), dynamic_ncols=True)
    try:
        result = analyzer.analyze(job, (lambda n: bar.update(1)) if bar is not None else None)
    except VideoReadError as exc:
        raise fail(f"{video}: {exc}", EXIT_FAILURES) from None
    finally:
        if bar is not None:
            bar.close()
    if csv_path == Path("-"):
        say(frames_csv(result), nl=False)
    elif csv_path:
        data = frames_csv(result).encode("utf-8")
        try:  # a child's emotions, frame by frame: readable by the user only; a pipe or
            # device (/dev/stdout) is written to, never replaced
            if csv_path.exists() and not csv_path.is_file():
                csv_path.write_bytes(data)
            else:
                write_private(csv_path, data)
        except OSError as exc:
            raise fail(f"cannot write {csv_path}: {exc.strerror or exc}", EXIT_FAILURES) from None
    if as_json:
        say(json.dumps(result_document(result), indent=2))
    elif csv_path != Path("-"):
        say(summary_text(result))
