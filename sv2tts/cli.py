"""Command-line interface: argument parsing and output formatting over the public API.

torch and librosa are imported inside the commands, so ``sv2tts --help`` stays fast.
A user mistake (Sv2ttsError) prints one line ``Error: ...`` and exits with code 2.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from pathlib import Path

import click



class _Group(click.Group):
    """Turns library errors into one-line messages with exit code 2 (no traceback)."""

    def invoke(self, ctx: click.Context):
        from sv2tts import Sv2ttsError  # light: no torch

        try:
            return super().invoke(ctx)
        except Sv2ttsError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)
        except OSError as e:  # a full disk, a closed pipe ...: one line, not a traceback
            click.echo(f"Error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


def _setup_logging(quiet: bool, verbose: int) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else
                                         logging.INFO if verbose else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(relativeCreated)7.0f ms %(levelname)s: %(message)s" if verbose > 1 else "%(levelname)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("sv2tts")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary to stdout.")(f)


def _print_json(report: dict) -> None:
    click.echo(json.dumps(report, indent=2))


def common_options(f):
    """-q/-v on every command."""
    f = click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="Only errors.")(f)
    return f


def device_option(f):
    """--device, and --threads (applied before the command runs)."""
    f = click.option("--threads", type=click.IntRange(min=1), default=None, expose_value=False,
                     callback=_set_threads, help="CPU threads at most (default: the cores); the vocoder "
                     "uses fewer while that is faster (a busy machine).")(f)
    return click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
                        show_default=True, help="Where the networks run.")(f)


def _set_threads(ctx: click.Context, param, threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        ctx.meta["sv2tts.threads"] = threads


def model_options(f):
    f = click.option("--vocoder", "vocoder", metavar="PATH|griffinlim",
                     help="vocoder.pt, or 'griffinlim' (no vocoder model needed).")(f)
    f = click.option("--synthesizer", "synthesizer", metavar="PATH", help="synthesizer.pt (RTVC format).")(f)
    f = click.option("--encoder", "encoder", metavar="PATH",
                     help="encoder.pt (RTVC format); default: the built-in weights.")(f)
    f = click.option("--precision", type=click.Choice(["float32", "bfloat16", "int8"]), default="float32",
                     show_default=True, help="Arithmetic of the synthesizer's decoder and the vocoder; "
                                                    "reduced precision is faster (float32: RTVC's numbers).")(f)
    f = click.option("--seed", type=int, default=None, help="Seed for reproducible output.")(f)
    f = click.option("--max-frames", type=click.IntRange(min=1), default=2000, show_default=True,
                     help="Cap on mel frames per sentence (12.5 ms each).")(f)
    f = click.option("--max-text-chars", type=click.IntRange(min=1), default=5000, show_default=True,
                     help="Cap on the characters of one text.")(f)
    return f


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sv2tts")
def main() -> None:
    """Voice cloning with SV2TTS: a few seconds of someone's voice + text -> speech.

    \b
    Example:
      sv2tts clone ref.wav "Hello there, how are you?" -o out.wav
    """


@main.command()
@click.argument("references", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Voice file (.npy).")
@click.option("--encoder", metavar="PATH", help="encoder.pt; default: the built-in weights.")
@json_option
@device_option
@common_options
def embed(references, output, encoder, as_json, device, quiet, verbose):
    """Save the voice of one or more reference clips as a .npy embedding.

    Several clips of the same speaker are averaged into one voice.

    \b
    Example:
      sv2tts embed alice1.wav alice2.flac -o alice.npy
      sv2tts clone alice.npy "Hi, I'm Alice." -o hi.wav
    """
    _setup_logging(quiet, verbose)
    if output.suffix.lower() != ".npy":
        raise click.UsageError(f"the voice file must end in .npy, got {output.name!r}")
    import sv2tts

    start = time.perf_counter()
    voice = sv2tts.Pipeline(encoder=encoder, device=device).embed(list(references))
    sv2tts.save_voice(output, voice)
    if as_json:
        _print_json({"output": str(output), "references": [str(r) for r in references],
                     "elapsed_s": round(time.perf_counter() - start, 3)})
    elif not quiet:
        click.echo(f"Saved voice of {len(references)} clip(s) to {output}", err=True)


@main.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--encoder", metavar="PATH", help="encoder.pt; default: the built-in weights.")
@json_option
@device_option
@common_options
def similarity(a, b, encoder, as_json, device, quiet, verbose):
    """Print the cosine similarity of two voices (audio files or .npy voices).

    Same speaker typically scores above ~0.75, different speakers below.

    \b
    Example:
      sv2tts similarity alice.wav unknown.wav
    """
    _setup_logging(quiet, verbose)
    import sv2tts

    pipe = sv2tts.Pipeline(encoder=encoder, device=device)
    score = float(pipe.embed(a) @ pipe.embed(b))
    if as_json:
        _print_json({"a": str(a), "b": str(b), "similarity": round(score, 6)})
    else:
        click.echo(f"{score:.4f}")


@main.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("text", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output audio (.wav or .flac).")
@click.option("--text-file", type=click.File("r", encoding="utf-8"), help="Read the text from a file.")
@click.option("--base64", "as_base64", is_flag=True, help="Print the WAV as base64 to stdout.")
@json_option
@model_options
@device_option
@common_options
def clone(reference, text, output, text_file, as_base64, as_json, max_frames, max_text_chars, seed, precision,
          encoder, synthesizer, vocoder, device, quiet, verbose):
    """Speak TEXT in the voice of REFERENCE (an audio clip or a .npy voice).

    TEXT '-' reads standard input; --text-file reads a file.

    \b
    Examples:
      sv2tts clone ref.wav "Hello there, how are you?" -o out.wav
      echo "Read from stdin." | sv2tts clone ref.wav - -o out.flac
      sv2tts clone ref.wav "For the web." --base64 > out.b64
    """
    _setup_logging(quiet, verbose)
    text = _read_text(text, text_file)
    if output is None and not as_base64:
        raise click.UsageError("give -o/--output FILE or --base64")
    if as_json and as_base64:
        raise click.UsageError("--json and --base64 both write to stdout: choose one")
    import sv2tts

    if output is not None:
        sv2tts.check_output_path(output)
        if Path(reference).resolve() == output.resolve():
            raise click.UsageError("the output would replace the reference: choose another -o")
    start = time.perf_counter()
    pipe = sv2tts.Pipeline(encoder=encoder, synthesizer=synthesizer, vocoder=vocoder, device=device,
                           max_text_chars=max_text_chars)
    wav = pipe.clone(reference, text, seed=seed, precision=precision, max_frames=max_frames)
    if output is not None:
        sv2tts.write_audio(output, wav)
        if as_json:
            _print_json({"output": str(output), "seconds": round(len(wav) / sv2tts.SAMPLE_RATE, 3), "seed": seed,
                         "precision": precision, "elapsed_s": round(time.perf_counter() - start, 3)})
        elif not quiet:
            click.echo(f"Wrote {len(wav) / sv2tts.SAMPLE_RATE:.2f} s to {output}", err=True)
    if as_base64:
        click.echo(sv2tts.to_base64(wav))


def _read_text(text: str | None, text_file) -> str:
    from sv2tts import TextError

    if text_file is not None and text is not None:
        raise click.UsageError("give TEXT or --text-file, not both")
    if text_file is not None:
        try:
            text = text_file.read()
        except UnicodeDecodeError as e:
            raise TextError(f"{text_file.name}: not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    elif text == "-":
        text = sys.stdin.read()
    if text is None:
        raise click.UsageError("missing TEXT (or --text-file, or '-' for stdin)")
    if not text.strip():
        raise TextError("the text is empty")
    return text


def ray_options(f):
    """--ray [ADDRESS], --workers, --cpus-per-worker, --shared-path/--no-shared-path (batch)."""
    f = click.option("--shared-path/--no-shared-path", "shared_path", default=None,
                     help="(--ray) The references are on a filesystem every node sees (workers read them there) "
                     "/ are not (the driver ships their bytes); default: detected.")(f)
    f = click.option("--cpus-per-worker", type=click.IntRange(min=1), default=None,
                     help="(--ray) CPUs (torch threads) of each worker; default 1.")(f)
    f = click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="(--ray) Workers, each loading the models once; default: as many as the cluster holds.")(f)
    return click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
                        metavar="[ADDRESS]", help="Run on a Ray cluster: alone (after SOURCE), a Ray started "
                        "here for the run; or auto, ray://HOST:10001, HOST:6379.")(f)


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--text", help="(directory mode) The text every reference clip speaks.")
@click.option("--text-file", type=click.File("r", encoding="utf-8"), help="(directory mode) Read that text from a file.")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path),
              help="(directory mode) Where <clip name>.wav files go.")
@click.option("--overwrite", is_flag=True, help="Redo items whose output already exists.")
@click.option("--group", type=click.IntRange(min=1), default=8, show_default=True,
              help="Items vocoded together (faster; each item's audio is the same as alone).")
@ray_options
@json_option
@model_options
@device_option
@common_options
def batch(source, text, text_file, output_dir, overwrite, group, ray_address, workers, cpus_per_worker, shared_path,
          as_json, seed, max_frames, max_text_chars, precision, encoder, synthesizer, vocoder, device, quiet, verbose):
    """Clone many items with the models loaded once.

    SOURCE is either a directory of reference clips (with --text or --text-file, and -o), or a CSV / JSONL
    manifest with columns reference, text, output (relative paths are relative to the
    manifest's folder). Existing outputs are skipped unless --overwrite; a failed item is
    reported and the batch goes on; the exit code is 1 when any item failed.

    \b
    With --ray the same batch runs on a Ray cluster (pip install "sv2tts[ray]"): the same
    outputs, audio, skips and summary.

    \b
    Examples:
      sv2tts batch refs/ --text "Welcome to the show." -o out/
      sv2tts batch jobs.csv --json
      sv2tts batch jobs.csv --ray auto --workers 8 --cpus-per-worker 2
    """
    _setup_logging(quiet, verbose)
    import sv2tts

    if ray_address is None and (workers, cpus_per_worker, shared_path) != (None, None, None):
        raise sv2tts.InputError("--workers, --cpus-per-worker and --shared-path go with --ray")

    if source.is_dir():
        if (text is None and text_file is None) or output_dir is None:
            raise click.UsageError("a directory SOURCE needs --text (or --text-file) and -o/--output-dir")
        items = sv2tts.directory_items(source, _read_text(text, text_file), output_dir)
    else:
        if text is not None or text_file is not None or output_dir is not None:
            raise click.UsageError("--text, --text-file and -o are for a directory SOURCE; a manifest has its own")
        items = sv2tts.read_manifest(source)
    options = dict(overwrite=overwrite, seed=seed, precision=precision, max_frames=max_frames, group=group,
                   progress=None if not quiet else False,
                   on_failure=lambda item, msg: click.echo(f"failed: {_naming(msg, item.reference)}", err=True))
    if ray_address is None:
        pipe = sv2tts.Pipeline(encoder=encoder, synthesizer=synthesizer, vocoder=vocoder, device=device,
                               max_text_chars=max_text_chars)
        report = sv2tts.run_batch(pipe, items, **options)
    else:
        with contextlib.redirect_stdout(sys.stderr):  # Ray prints its notices to stdout: keep it for the report
            report = sv2tts.run_batch_ray(items, address=ray_address, workers=workers,
                                          cpus_per_worker=cpus_per_worker or 1, shared_path=shared_path,
                                          encoder=encoder, synthesizer=synthesizer, vocoder=vocoder, device=device,
                                          max_text_chars=max_text_chars, **options)
    if as_json:
        _print_json(report)
    elif not quiet:
        c = report["counts"]
        click.echo(f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed"
                   + (f", {c['interrupted']} not run ({report['stopped']})" if report["interrupted"] else "")
                   + f" ({report['seconds']:.1f} s)", err=True)
    sys.exit(130 if report["stopped"] == "interrupted" else 1 if report["counts"]["failed"] or report["stopped"] else 0)


def _naming(message: str, reference) -> str:
    """The message, prefixed with the reference unless it already starts with it."""
    return message if message.startswith(str(reference)) else f"{reference}: {message}"


@main.group()
def models():
    """Download and inspect the pretrained checkpoints (RTVC's published files).

    \b
    Example:
      sv2tts models download && sv2tts models list
    """


@models.command("download")
@click.argument("names", nargs=-1, type=click.Choice(["encoder", "synthesizer", "vocoder"]))
@common_options
def models_download(names, quiet, verbose):
    """Fetch checkpoints into the cache ($SV2TTS_HOME; mirror: $SV2TTS_MODEL_URL).

    Interrupted downloads resume. With no NAMES, fetches the synthesizer and the vocoder
    (the encoder is built in; name it to fetch RTVC's encoder.pt too).

    \b
    Example:
      sv2tts models download
      SV2TTS_HOME=/srv/models sv2tts models download vocoder
    """
    _setup_logging(quiet, verbose)
    import sv2tts

    for name in names or ("synthesizer", "vocoder"):
        path = sv2tts.download_model(name, progress=None if not quiet else False, retries=3)
        if not quiet:
            click.echo(f"{name}: {path}", err=True)


@models.command("list")
@common_options
def models_list(quiet, verbose):
    """Show the cached checkpoints, their sizes and whether each verified.

    \b
    Example:
      sv2tts models list
    """
    _setup_logging(quiet, verbose)
    import sv2tts

    click.echo(f"cache: {sv2tts.model_cache_dir()}")
    for s in sv2tts.list_models():
        size = f"{s.size:,} B" if s.size is not None else "-"
        state = "missing" if not s.present else ("unusable" if s.detail.startswith("wrong size") else "present")
        detail = s.detail
        if s.name == "encoder" and not s.present:
            state, detail = "built in", "sv2tts ships the encoder's weights; encoder.pt is optional"
        click.echo(f"{s.name:12} {state:8} {size:>15}  {detail}")


@main.group()
def finetune():
    """Fine-tune the synthesizer (then the vocoder) on one voice: 15-45 minutes of transcribed speech.

    DATA is a folder of audio files each with a same-named .txt transcript, a CSV / JSONL manifest
    with columns audio, text, or an LJSpeech-style metadata.csv. Run the same command again to
    resume; Ctrl-C saves a checkpoint first.

    \b
    Example:
      sv2tts finetune synthesizer my_clips/ -o my_voice/
      sv2tts clone my_voice/voice.npy "Hello." --synthesizer my_voice/synthesizer.pt -o hello.wav
      sv2tts finetune vocoder my_clips/ --synthesizer my_voice/synthesizer.pt -o my_vocoder/
    """


def finetune_options(f):
    """The options both fine-tuning commands share."""
    f = click.option("--overwrite", is_flag=True, help="Replace the run held in the output folder.")(f)
    f = click.option("--resume", is_flag=True, help="Require a run to resume in the output folder "
                     "(without it a run there is resumed anyway).")(f)
    f = click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=None,
                     help="Data order, dropout and crops (default 0; a resumed run keeps its own).")(f)
    f = click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
                     help="Share of the utterances held out for the validation loss.")(f)
    f = click.option("--sample-every", type=click.IntRange(min=1), default=500, show_default=True,
                     help="Steps between validation loss and samples (samples/).")(f)
    f = click.option("--save-every", type=click.IntRange(min=1), default=100, show_default=True,
                     help="Steps between checkpoints.")(f)
    f = click.option("--lr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
                     help="Learning rate (default: RTVC's for the start checkpoint).")(f)
    f = click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Utterances per step.")(f)
    f = click.option("--from", "start", metavar="PATH", help="Checkpoint to start from (default: the pretrained model).")(f)
    f = click.option("-o", "--output-dir", required=True, type=click.Path(path_type=Path),
                     help="Run folder: checkpoints, samples, metrics.jsonl, preprocessed data.")(f)
    return click.argument("data", type=click.Path(path_type=Path))(f)


def _finetune_config(steps, batch_size, lr, save_every, sample_every, val_fraction, seed):
    from sv2tts import train

    return train.FinetuneConfig(steps=steps, batch_size=batch_size, lr=lr, save_every=save_every,
                                sample_every=sample_every, val_fraction=val_fraction, seed=seed)


def _finetune_run(run, model: str, as_json: bool, quiet: bool) -> None:
    """Train an opened run, report how it ended; exit 130 after Ctrl-C (checkpoint saved)."""
    if not quiet and not as_json:
        click.echo(f"{run.report.summary()} (report: {run.folder.path / 'data' / 'report.json'})", err=True)
        click.echo(f"{'Resuming' if run.resumed else 'Fine-tuning'} the {model} at step {run.step}, "
                   f"to step {run.target_step}", err=True)
    result = run.run(progress=None if not quiet else False)
    if as_json:
        _print_json({"output_dir": str(run.folder.path), "checkpoint": str(run.checkpoint), "step": result.step,
                     "steps_done": result.steps_done, "interrupted": result.interrupted, "loss": result.loss,
                     "val_loss": result.val_loss, "seconds": round(result.seconds, 3),
                     "kept": len(run.report.kept), "dropped": len(run.report.dropped),
                     "samples": [str(p) for p in result.samples]})
    elif not quiet:
        val = f", validation loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        loss = f": loss {result.loss:.4f}{val}" if result.loss is not None else ""
        click.echo(f"{'Interrupted at' if result.interrupted else 'Reached'} step {result.step}{loss}; "
                   f"saved {run.checkpoint}" + (" (run the same command to resume)" if result.interrupted else ""),
                   err=True)
    if result.interrupted:
        sys.exit(130)


@finetune.command("synthesizer")
@finetune_options
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps of the run [default: 2000].")
@click.option("--vocoder", metavar="PATH", help="vocoder.pt for the samples (default: Griffin-Lim).")
@json_option
@device_option
@common_options
def finetune_synthesizer(data, output_dir, start, batch_size, lr, save_every, sample_every, val_fraction, seed,
                         resume, overwrite, steps, vocoder, as_json, device, quiet, verbose):
    """Fine-tune a synthesizer on DATA (RTVC's training step); the result loads with
    `sv2tts clone --synthesizer OUT/synthesizer.pt`.

    \b
    Example:
      sv2tts finetune synthesizer my_clips/ -o my_voice/ --steps 2000
      sv2tts clone my_voice/voice.npy "Hello." --synthesizer my_voice/synthesizer.pt -o hello.wav
    """
    _setup_logging(quiet, verbose)
    import sv2tts

    config = _finetune_config(steps, batch_size, lr, save_every, sample_every, val_fraction, seed)
    voc = sv2tts.Vocoder.load(vocoder, device=device) if vocoder is not None else None
    run = sv2tts.train.SynthesizerFinetune.open(data, output_dir, start=start, config=config, device=device,
                                                vocoder=voc, overwrite=overwrite, resume=resume or None,
                                                progress=None if not quiet else False)
    _finetune_run(run, "synthesizer", as_json, quiet)


@finetune.command("vocoder")
@finetune_options
@click.option("--synthesizer", required=True, type=click.Path(path_type=Path),
              help="The fine-tuned synthesizer.pt whose ground-truth-aligned mels the vocoder learns from.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps of the run [default: 5000].")
@json_option
@device_option
@common_options
def finetune_vocoder(data, output_dir, start, batch_size, lr, save_every, sample_every, val_fraction, seed,
                     resume, overwrite, synthesizer, steps, as_json, device, quiet, verbose):
    """Fine-tune a vocoder on DATA with a fine-tuned synthesizer's ground-truth-aligned mels.

    \b
    Example:
      sv2tts finetune vocoder my_clips/ --synthesizer my_voice/synthesizer.pt -o my_vocoder/
      sv2tts clone my_voice/voice.npy "Hello." --synthesizer my_voice/synthesizer.pt \\
          --vocoder my_vocoder/vocoder.pt -o hello.wav
    """
    _setup_logging(quiet, verbose)
    import sv2tts

    config = _finetune_config(steps, batch_size, lr, save_every, sample_every, val_fraction, seed)
    run = sv2tts.train.VocoderFinetune.open(data, output_dir, synthesizer=synthesizer, start=start, config=config,
                                            device=device, overwrite=overwrite, resume=resume or None,
                                            progress=None if not quiet else False)
    _finetune_run(run, "vocoder", as_json, quiet)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--encoder", metavar="PATH", help="encoder.pt; default: the built-in weights.")
@click.option("--synthesizer", metavar="PATH", help="synthesizer.pt; default: the cached model.")
@click.option("--vocoder", metavar="PATH|griffinlim", help="vocoder.pt; default: the cached model.")
@click.option("--precision", type=click.Choice(["float32", "bfloat16", "int8"]), default="float32",
              show_default=True, help="Arithmetic of the synthesizer's decoder and the vocoder; int8 is the "
                                      "fastest on a CPU.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20, show_default=True,
              help="Largest request body; more is refused with 413 while it arrives.")
@click.option("--max-text-chars", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Longest text of one request.")
@click.option("--max-queue", type=click.IntRange(min=0), default=8, show_default=True,
              help="Requests that may wait for a worker; more get 429 with Retry-After.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Requests computed at once (default: one per two CPU cores).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=300, show_default=True,
              help="Seconds a request may take, waiting included; then 504.")
@click.option("--api-key", envvar="SV2TTS_API_KEY", metavar="KEY",
              help="Require 'Authorization: Bearer KEY' on /v1 (also $SV2TTS_API_KEY).")
@click.option("--voices-dir", type=click.Path(path_type=Path), help="Saved voices (default: $SV2TTS_HOME/voices).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let web pages from ORIGIN (e.g. https://example.com) call the API; repeatable.")
@device_option
@common_options
def serve(host, port, encoder, synthesizer, vocoder, precision, max_upload_mb, max_text_chars, max_queue,
          workers, timeout_s, api_key, voices_dir, cors_origins, device, quiet, verbose):
    """Run the HTTP service and its web page (needs `pip install "sv2tts[serve]"`).

    The page is at http://HOST:PORT/, the API under /v1 (docs at /docs).

    \b
    Example:
      sv2tts serve --port 8000 --precision int8
      curl -F reference=@ref.wav -F text="Hello there." localhost:8000/v1/clone -o out.wav
    """
    _setup_logging(quiet, verbose)
    try:
        import uvicorn

        from sv2tts.server import ServeSettings, create_app
    except ImportError as e:
        raise click.UsageError(f"sv2tts serve needs the serve extra ({e.name} is missing): "
                               f'pip install "sv2tts[serve]"') from None
    from sv2tts.server.settings import default_workers

    settings = ServeSettings(host=host, port=port, encoder=encoder, synthesizer=synthesizer, vocoder=vocoder,
                             precision=precision, device=device, max_upload_mb=max_upload_mb,
                             max_text_chars=max_text_chars, max_queue=max_queue,
                             workers=workers or default_workers(), threads=click.get_current_context().meta.get(
                                 "sv2tts.threads"), timeout_s=timeout_s, api_key=api_key or None,
                             voices_dir=voices_dir, cors_origins=tuple(cors_origins))
    if host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        click.echo(f"Warning: listening on {host} without --api-key: anyone who can reach it can use it", err=True)
    app = create_app(settings)  # loads the models: a bad model path fails here, in one line
    if not quiet:
        click.echo(f"sv2tts serving on http://{host}:{port}/ (API docs: /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="error" if quiet else "info" if verbose else "warning")


if __name__ == "__main__":  # pragma: no cover
    main()
