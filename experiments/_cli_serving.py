"""``overblik`` commands for serving: serve, profiles, example-request, keys, auditlog."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from overblik.experiments._cli_common import (
    app,
    console,
    fail,
    out_console,
    parse_day,
    progress_bar,
    warn,
)
from overblik.features._errors import InputError

__all__ = ["app", "auditlog_app", "keys_app"]

keys_app = typer.Typer(name="keys", help="API keys of the scoring service: create, list, "
                       "revoke. Keys are stored only as hashes.", no_args_is_help=True)
auditlog_app = typer.Typer(name="auditlog", help="The scoring service's audit log.",
                           no_args_is_help=True)
app.add_typer(keys_app)
app.add_typer(auditlog_app)

ModelOption = Annotated[str, typer.Option(
    "--model", help="Registered model (overblik-child-placement) or experiment name "
    "(child_placement).")]
AliasOption = Annotated[str, typer.Option(help="Registry alias to serve.")]
TrackingOption = Annotated[str | None, typer.Option(
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or a SQLite file in data/).")]
StoreOption = Annotated[str | None, typer.Option(
    "--store", "--url", help="Audit log and API keys: sqlite:///FILE or postgresql://... "
    "(default: $OVERBLIK_SERVE_STORE or data/serving.db).")]
KeyFileOption = Annotated[Path | None, typer.Option(
    help="Pseudonymisation key file, the one ingest used (else $OVERBLIK_PSEUDONYM_KEY).")]
DemoKeyOption = Annotated[bool, typer.Option(
    "--demo-key", help="Use the public demo key (synthetic data only).")]


def _store(url: str | None) -> str:
    from overblik.serving import default_store_url

    return url or default_store_url()


def _require_store(url: str) -> None:
    """``serve`` opens the store the keys were created in: a SQLite store that does not
    exist is an error, not created.

    Creating it would start, at a mistyped path, a service with no keys (every request
    refused) that writes its audit log apart from the real one; ``--check`` would report
    such a store as fine.
    """
    from overblik.serving import open_database

    try:
        open_database(url).require_existing()
    except InputError as exc:
        raise InputError(f"{exc}; `serve` never creates a store (the API keys and the audit "
                         "log live there): make one with `overblik keys create --role "
                         f"caseworker-system --name NAME --store {url}`") from None


def _check_host(host: str) -> None:
    """BentoML binds an IP address (or localhost); anything else fails after startup."""
    import ipaddress

    if host == "localhost":
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InputError(f"--host {host!r} is not an IP address: give e.g. 127.0.0.1 (this "
                         "machine only) or 0.0.0.0 (every interface)") from None


def _check_port_free(host: str, port: int) -> None:
    """A port in use fails inside BentoML with a traceback: say so before starting."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the server binds: a port left in TIME_WAIT by a stopped server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"--port {port} on {host} cannot be used ({exc.strerror}): "
                             "another service listens there; choose another --port") from None


@app.command()
def serve(
    model: ModelOption = "overblik-child-placement",
    alias: AliasOption = "champion",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface (localhost by default; put the "
                                      "municipality's gateway in front for more).")
                    ] = "127.0.0.1",
    tracking_uri: TrackingOption = None,
    profiles: Annotated[Path | None, typer.Option(
        help="Profile store from `overblik profiles` (default: data/profiles/MODEL.parquet)."
    )] = None,
    store: StoreOption = None,
    key_file: KeyFileOption = None,
    demo_key: DemoKeyOption = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    check: Annotated[bool, typer.Option(
        "--check", help="Load and check everything, print what would be served, and exit; "
        "creates nothing (a registry file that does not exist is an error, as a store is).")
    ] = False,
) -> None:
    """Serve the approved model: `bentoml serve` with scores, reasons, programme effects
    (when the version has effect models), keys and audit log.

    Before starting it loads the version behind the alias with its feature spec, the profile
    store and the key, and refuses to start (exit 2, one clear message) if the version is
    not approved by the ethics board (the gate of `overblik promote`), files or the store
    (made by `overblik keys create`) are missing or corrupt, or the profile store does not fit
    the model or the key. While it runs it reads the board's decision every 10 s, and
    answers no scores once the version may no longer serve. Swagger UI is at /docs.
    """
    from overblik.experiments._approval import CHAMPION
    from overblik.serving import ScoringEngine, ServingSettings, StartupError

    try:
        if key_file is not None and demo_key:
            raise InputError("give either --key-file or --demo-key, not both")
        _check_host(host)  # before the ~20 s of loading, not after
        settings = ServingSettings(
            **{k: v for k, v in {"tracking_uri": tracking_uri, "store_url": store,
                                 "profile_store": profiles}.items() if v is not None},
            model_name=model, alias=alias, key_file=key_file, demo_key=demo_key)
        _require_store(settings.store_url)
        with console.status("loading and checking the model, profiles and store"):
            engine = ScoringEngine.start(settings)
        keys = [k for k in engine.keys.list() if k.active]
        engine.close()
    except (StartupError, InputError) as exc:
        fail(str(exc))
        return
    m = engine.model
    out_console.print(f"[bold]{m.name}[/] version {m.version} ({m.alias}), approved by "
                      f"{m.approval.by} on {m.approval.at}; {len(engine.store):,} profiles as "
                      f"of {engine.store.meta.as_of}; store {engine.audit.db.redacted_url}")
    if m.alias != CHAMPION:
        console.print(f"[yellow]note:[/] serving the alias '{m.alias}', not the champion: "
                      "the ethics board approved this version, but `overblik promote` has not "
                      "made it the one the municipality serves")
    if m.effects is not None:
        offers = ", ".join(f"{p} ({n} places)" for p, n in
                           zip(m.effects.programmes, m.effects.places, strict=True))
        out_console.print(f"effect models: {offers}; /recommend and /allocate answer")
    else:
        console.print("[yellow]no effect models:[/] /recommend and /allocate answer 409; add an "
                      "`effects:` section to the experiment file and retrain to get them")
    if not any(k.role == "caseworker-system" for k in keys):
        console.print("[yellow]no active caseworker-system key:[/] create one with "
                      "`overblik keys create --role caseworker-system --name NAME`")
    if m.demo_data and not engine.store.meta.demo_data:
        # The approval gate reads the card, which says "demo"; a model of the synthetic
        # municipality scoring real citizens is still worth a line nobody can miss.
        console.print(f"[bold red]warning:[/] version {m.version} was trained on the synthetic "
                      "demo municipality, but the profile store holds real (non-demo) data: "
                      "its scores say nothing about these citizens; train on the "
                      "municipality's own data and have the ethics board review that version")
    for warning in engine.store.meta.warnings:
        warn(warning)
    if engine.store.meta.model_version != m.version:
        console.print(f"[yellow]note:[/] the profile store was built for version "
                      f"{engine.store.meta.model_version}; the features are the same, but "
                      f"rebuild it with `overblik profiles` to serve version {m.version}'s own")
    try:
        if not check:
            _check_port_free(host, port)
    except InputError as exc:
        fail(str(exc))
        return
    if check:
        return
    from overblik.serving._service import STOP_ON_FAILURE_ENV, WORKERS_ENV

    # BentoML records an OpenTelemetry span per stage of every request even when nothing
    # exports them (sample rate 0): ~15% of a score's CPU. Off unless the operator set it.
    env = {"OTEL_SDK_DISABLED": "true", **os.environ, **settings.to_env(),
           STOP_ON_FAILURE_ENV: "1", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "bentoml", "serve", "overblik.serving._service:ScoringService",
            "--host", host, "--port", str(port)]
    env[WORKERS_ENV] = str(workers)
    out_console.print(f"serving on http://{host}:{port} (Swagger UI: /docs); Ctrl-C stops")
    raise typer.Exit(code=_run_until_stopped(argv, env))


def _run_until_stopped(argv: list[str], env: dict[str, str]) -> int:
    """Run the server; SIGTERM or Ctrl-C here stops it too (no orphaned server)."""
    child = subprocess.Popen(argv, env=env)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.terminate()
            child.wait(timeout=30)


@app.command()
def profiles(
    as_of: Annotated[str, typer.Option(help="The profiles' date, YYYY-MM-DD (events before "
                                       "it count).")],
    clean: Annotated[Path, typer.Option(help="Folder written by `overblik ingest`.")],
    model: ModelOption = "overblik-child-placement",
    alias: AliasOption = "champion",
    out: Annotated[Path | None, typer.Option(
        help="Output file (default: data/profiles/MODEL.parquet, where `serve` looks).")
    ] = None,
    fmt: Annotated[Literal["parquet", "csv"], typer.Option(
        "--format", help="parquet (metadata inside) or csv (metadata in FILE.meta.json).")
    ] = "parquet",
    tracking_uri: TrackingOption = None,
) -> None:
    """Build the profile store the scoring service reads (the nightly batch).

    Takes the cohort of the model's experiment at AS_OF and computes every member's
    features with the same code as training; writes person_id (pseudonym), as_of and one
    column per feature, with the model, feature list and key fingerprint it was built for.
    """
    from overblik.experiments._tracking import default_tracking_uri
    from overblik.serving import StartupError, build_profile_store, load_served_model
    from overblik.serving._settings import default_profile_store, model_name_of

    try:
        day = parse_day(as_of, "--as-of")
    except InputError as exc:
        fail(str(exc))
        return
    name = model_name_of(model)
    target = out or default_profile_store(name)
    if out is None and fmt == "csv":  # a name given is checked against the format instead
        target = target.with_suffix(".csv")
    try:
        served = load_served_model(name, alias, tracking_uri=tracking_uri or
                                   default_tracking_uri(), require_approval=False)
        with progress_bar(f"profiles as of {day}") as progress:
            meta = build_profile_store(served, clean, day, target, fmt=fmt, progress=progress)
    except (StartupError, InputError) as exc:
        fail(str(exc))
        return
    out_console.print(f"{meta.rows:,} profiles of cohort {meta.cohort} as of {meta.as_of} "
                      f"for {meta.model} version {meta.model_version} "
                      f"({len(meta.features)} features) -> {target}")
    if served.refusal is not None:
        warn(f"this version may not serve ({served.refusal}): `overblik serve` refuses it "
             "until the gate is open")
    for warning in meta.warnings:
        warn(warning)


@app.command("example-request")
def example_request(
    raw: Annotated[Path, typer.Option(help="The synthetic municipality's raw folder "
                                      "(`overblik generate --out DIR` wrote DIR/raw).")],
    api_key_file: Annotated[Path, typer.Option(
        help="File holding a caseworker-system key (`overblik keys create ... > FILE`).")],
    model: ModelOption = "overblik-child-placement",
    profiles: Annotated[Path | None, typer.Option(
        help="Profile store (default: data/profiles/MODEL.parquet).")] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the service.")] = 3000,
    host: Annotated[str, typer.Option(help="Host of the service.")] = "127.0.0.1",
    endpoint: Annotated[str, typer.Option(
        help="`score` (risk with reasons) or `recommend` (programme effects; the version "
             "needs effect models).")] = "score",
) -> None:
    """Print a ready curl for POST /score or /recommend on a synthetic citizen in the
    profile store.

    Demo data only: it refuses a profile store that was not built from synthetic data
    pseudonymised with the public demo key (a real CPR number is never printed). The key is
    read from the file by the shell (`$(cat FILE)`), so it is not printed either.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    from overblik.features import demo_key
    from overblik.features._pseudonym import pseudonymise_one
    from overblik.serving._settings import default_profile_store

    store = profiles or default_profile_store(model)
    population = raw / "population.parquet"
    try:
        if endpoint not in ("score", "recommend"):
            raise InputError(f"--endpoint {endpoint!r}: give score or recommend")
        if not store.is_file():
            raise InputError(f"no profile store at {store}: run `overblik profiles` first")
        try:
            meta = json.loads((pq.read_schema(store).metadata or {}).get(b"overblik", b"{}"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{store} is not a profile store ({exc}): run `overblik "
                             "profiles`") from None
        if not meta.get("demo_data") or meta.get("key_fingerprint") != demo_key().fingerprint:
            raise InputError(f"{store} was not built from synthetic data with the demo key; "
                             "example requests are for the demo only")
        if not population.is_file():
            raise InputError(f"--raw {raw}: no population.parquet; give the folder "
                             "`overblik generate` wrote")
        if not api_key_file.is_file():
            raise InputError(f"--api-key-file {api_key_file}: no such file")
        if not api_key_file.read_text(encoding="utf-8", errors="replace").strip():
            raise InputError(f"--api-key-file {api_key_file} is empty: write the key "
                             "`overblik keys create` printed into it")
        try:
            members = set(pd.read_parquet(store, columns=["person_id"])["person_id"].astype(str))
            cprs = pd.read_parquet(population, columns=["cpr"])["cpr"].astype(str)
        except (OSError, ValueError, KeyError) as exc:  # pyarrow's errors are ValueErrors
            raise InputError(f"--raw {raw} or --profiles {store} cannot be read ({exc}): give "
                             "the raw folder `overblik generate` wrote and the store "
                             "`overblik profiles` wrote") from None
        key = demo_key()
        cpr = next((c for c in cprs if pseudonymise_one(c, key) in members), None)
        if cpr is None:
            raise InputError(f"no citizen of {population} is in {store}: is it the same "
                             "municipality?")
    except InputError as exc:
        fail(str(exc))
        return
    body = json.dumps({"cpr": cpr, "top": 3})
    # Quoted for the shell: a host or path with spaces or ';' must stay one argument.
    url = shlex.quote(f"http://{host}:{port}/{endpoint}")
    print(f"curl -s -X POST {url} "
          f"-H \"Authorization: Bearer $(cat {shlex.quote(str(api_key_file))})\" "
          f"-H 'Content-Type: application/json' -H 'Accept-Language: en' -d '{body}'")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="caseworker-system, analyst, auditor or admin.")],
    name: Annotated[str, typer.Option(help="Who uses the key, e.g. 'Nexus familieafdeling'.")],
    store: StoreOption = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from overblik.serving import KeyStore, open_database

    try:
        record, token = KeyStore(open_database(_store(store))).create(role, name)
    except InputError as exc:
        fail(str(exc))
        return
    console.print(f"key {record.key_id} for {record.name!r} ({record.role}); shown only now, "
                  "keep it secret:")
    print(token)


@keys_app.command("list")
def keys_list(store: StoreOption = None) -> None:
    """List the keys: id, role, name, created, revoked (never the keys)."""
    from overblik.serving import KeyStore, open_database

    try:
        keys = KeyStore(open_database(_store(store)).require_existing(),
                        create=False).list()
    except InputError as exc:
        fail(str(exc))
        return
    table = Table(title=f"API keys ({len(keys)})")
    for col in ("key id", "role", "name", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.key_id, k.role, k.name, k.created_at, k.revoked_at or "")
    out_console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from `overblik keys list`).")],
    store: StoreOption = None,
) -> None:
    """Revoke a key: a running service refuses it within its key cache time (5 s)."""
    from overblik.serving import KeyStore, open_database

    try:
        record = KeyStore(open_database(_store(store)).require_existing(),
                          create=False).revoke(key_id)
    except InputError as exc:
        fail(str(exc))
        return
    out_console.print(f"key {record.key_id} ({record.name}, {record.role}) revoked at "
                      f"{record.revoked_at}")


@auditlog_app.command("verify")
def auditlog_verify(store: StoreOption = None) -> None:
    """Check the audit log's hash chain.

    Exit 0 when intact (prints the entries and the head hash: keep it elsewhere to pin the
    log); exit 1 when an entry was edited, deleted or moved, naming the first one; exit 2
    when the store cannot be read.
    """
    from overblik.serving import AuditLog, open_database

    try:
        result = AuditLog(open_database(_store(store)).require_existing(),
                          create=False).verify()
    except InputError as exc:
        fail(str(exc))
        return
    if result.intact:
        out_console.print(f"audit log intact: {result.entries:,} entries, head {result.head}")
        return
    console.print(f"[bold red]audit log broken ({result.kind}) at entry {result.seq}:[/] "
                  f"{result.problem}", highlight=False)
    raise typer.Exit(code=1)


@auditlog_app.command("export")
def auditlog_export(
    store: StoreOption = None,
    since: Annotated[str | None, typer.Option(
        help="First day, YYYY-MM-DD in UTC (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(
        help="Last day, YYYY-MM-DD in UTC (inclusive: entries before the day after it).")
    ] = None,
    endpoint: Annotated[list[str] | None, typer.Option(
        help="Only these endpoints, e.g. /score (repeat it or separate by commas).")] = None,
    key_id: Annotated[str | None, typer.Option(
        "--key-id", help="Only this API key's entries (the id `overblik keys list` shows).")
    ] = None,
    request_id: Annotated[str | None, typer.Option(
        "--request-id", help="Only this request and the decisions on it (a batch item's "
        "ID-INDEX: the batch and the decisions on that item).")] = None,
    cpr: Annotated[str | None, typer.Option(
        help="Only entries about this citizen and the decisions on their requests. The number "
        "is pseudonymised with the key (--key-file, $OVERBLIK_PSEUDONYM_KEY or --demo-key) "
        "and never printed or written; '-' reads it from standard input (out of the shell "
        "history).")] = None,
    key_file: KeyFileOption = None,
    demo_key: DemoKeyOption = False,
    fmt: Annotated[Literal["csv", "jsonl"], typer.Option(
        "--format", help="jsonl (one JSON object per entry) or csv (pseudonyms joined by ';', "
        "summary as JSON text).")] = "jsonl",
    out: Annotated[Path | None, typer.Option(
        help="Output file, replaced only when complete (default: standard output).")] = None,
) -> None:
    """Export the audit log's entries, filtered, for an auditor or the data-protection
    officer (e.g. a citizen's access request: --cpr).

    One row per entry: seq, at, kind, request_id, decides (the request a caseworker decision
    is on), endpoint, method, status, key_id, role, model, model_version, pseudonyms, summary,
    hash. Filters combine (all must hold). The chain is verified first: when it is broken
    everything is still exported, a warning names the first broken entry and the exit code
    is 1 (as `auditlog verify`); exit 2 on bad input. A one-line summary goes to stderr.
    """
    from overblik.features._pseudonym import load_key
    from overblik.serving import AuditLog, open_database
    from overblik.serving._audit_export import (
        ExportFilter,
        export_audit_log,
        parse_endpoints,
        pseudonym_of_cpr,
    )

    try:
        pseudonym = None
        if cpr is None and (key_file is not None or demo_key):
            raise InputError("--key-file and --demo-key only go with --cpr")
        if cpr is not None:
            if key_file is not None and demo_key:
                raise InputError("give either --key-file or --demo-key, not both")
            if cpr.strip() == "-":
                cpr = sys.stdin.readline().strip()
                if not cpr:
                    raise InputError("--cpr -: standard input held no CPR number")
            # The key as `serve` loads it, so that the pseudonym is the one the log holds.
            pseudonym = pseudonym_of_cpr(cpr, load_key(key_file, demo=demo_key))
        flt = ExportFilter(
            since=None if since is None else parse_day(since, "--since"),
            until=None if until is None else parse_day(until, "--until"),
            endpoints=parse_endpoints(endpoint or []), key_id=key_id, request_id=request_id,
            pseudonym=pseudonym)
        log = AuditLog(open_database(_store(store)).require_existing(), create=False)
        result = export_audit_log(log, flt, fmt, out)
    except InputError as exc:
        fail(str(exc))
        return
    check = result.verification
    if not check.intact:
        console.print(f"[bold red]WARNING: the audit log is broken ({check.kind}) at entry "
                      f"{check.seq}:[/] {check.problem}. Every entry was exported as stored; do "
                      "not rely on the export as evidence until the break is explained.",
                      highlight=False, soft_wrap=True)
    console.print(result.summary(flt), highlight=False, soft_wrap=True)
    if pseudonym is not None and result.written == 0:
        console.print("[yellow]note:[/] no entry is about this citizen; if you expected some, "
                      "check that the key is the one the service uses (another key gives "
                      "another pseudonym)", highlight=False, soft_wrap=True)
    if not check.intact:
        raise typer.Exit(code=1)
