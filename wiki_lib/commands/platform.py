"""Commands for the platform itself: setup, config, the local stack and the database."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import asdict

from wiki_lib import db
from wiki_lib.commands._common import add_command, plain_flag, print_json, setting_flag
from wiki_lib.config import Settings
from wiki_lib.errors import PrerequisiteError
from wiki_lib.jvm import setup_jars
from wiki_lib.stack import LocalStack

__all__ = ["register"]


def _setup(args: argparse.Namespace, settings: Settings) -> int:
    if args.install_system:
        _install_system_packages()
    jars = setup_jars(settings.jvm)
    print(
        f"jars ready: {jars.broker_jars} broker jars in {jars.broker_dir}, "
        f"{jars.connector_jars} connector jars for Spark {jars.spark_version} in {jars.spark_dir}"
    )
    return 0


def _install_system_packages() -> None:
    """Install Java, Maven and PostgreSQL with apt where they are missing (root only)."""
    wanted = {
        "java": "openjdk-17-jdk-headless",
        "mvn": "maven",
        "initdb": "postgresql",
    }
    from wiki_lib.stack.postgres import find_postgres_bin

    missing = []
    for exe, pkg in wanted.items():
        if exe == "initdb":
            try:
                find_postgres_bin()
                continue
            except PrerequisiteError:
                missing.append(pkg)
        elif shutil.which(exe) is None:
            missing.append(pkg)
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise PrerequisiteError(f"missing {missing}; install them with your package manager")
    print(f"installing with apt-get: {' '.join(missing)}", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-q"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)


def _config_show(args: argparse.Namespace, settings: Settings) -> int:
    print_json(settings.masked())
    return 0


def _report_services(stack: LocalStack) -> None:
    for svc in stack.status():
        state = "running" if svc.running else "STOPPED"
        print(f"{svc.name:<10} {state:<8} pid={svc.pid} {svc.endpoint}  log={svc.log_file}")


def _stack_up(args: argparse.Namespace, settings: Settings) -> int:
    stack = LocalStack(settings, brokers=args.brokers, spark_workers=args.spark_workers or 0)
    report = stack.up()
    if report.started:
        print(f"started {', '.join(report.started)} in {report.seconds:.1f}s")
    else:
        print("already running; nothing started")
    if report.migrations:
        print(f"applied migrations: {', '.join(report.migrations)}")
    _report_services(stack)
    print(f"kafka bootstrap: {stack.settings.kafka.bootstrap}")
    if stack.spark.planned:
        print(f"spark master: {stack.spark.url}  (wikipulse stream run --master {stack.spark.url})")
    return 0


def _stack_down(args: argparse.Namespace, settings: Settings) -> int:
    stack = LocalStack(settings)
    stopped = stack.down(purge=args.purge)
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _stack_status(args: argparse.Namespace, settings: Settings) -> int:
    stack = LocalStack(settings)
    if args.json:
        print_json([asdict(s) for s in stack.status()])
    else:
        _report_services(stack)
    return 0 if stack.running() else 3


def _db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    if args.create_roles:
        db.ensure_database(settings.postgres)
        db.create_roles(settings.postgres)
        print("database and roles ready")
    applied = db.migrate(settings.postgres, args.schema)
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``setup``, ``config``, ``stack`` and ``db`` to the CLI."""
    p = add_command(sub, "setup", _setup, "resolve the JVM jars with Maven (and system packages)")
    plain_flag(
        p,
        "setup",
        "--install-system",
        "apt-get install Java, Maven, PostgreSQL if missing",
        action="store_true",
    )

    config = sub.add_parser("config", help="show the effective settings")
    csub = config.add_subparsers(dest="config_cmd", required=True)
    add_command(csub, "show", _config_show, "print the effective settings, secrets masked")

    stack = sub.add_parser("stack", help="the local Kafka and PostgreSQL")
    ssub = stack.add_subparsers(dest="stack_cmd", required=True)
    p = add_command(ssub, "up", _stack_up, "start Kafka (KRaft) and PostgreSQL; idempotent")
    setting_flag(p, "--state-dir", "stack.state_dir", "data, logs and pid files")
    setting_flag(p, "--kafka-port", "stack.kafka_port", "broker port (0: free)", type=int)
    setting_flag(p, "--postgres-port", "postgres.port", "PostgreSQL port (0: free)", type=int)
    plain_flag(p, "stack", "--brokers", "number of Kafka brokers", type=int, default=None)
    plain_flag(
        p,
        "stack",
        "--spark-workers",
        "also start a Spark standalone master with this many workers (0: none)",
        type=int,
        default=None,
    )
    p = add_command(ssub, "down", _stack_down, "stop Spark (if started), Kafka, then PostgreSQL")
    setting_flag(p, "--state-dir", "stack.state_dir", "data, logs and pid files")
    plain_flag(p, "stack", "--purge", "also delete the services' data", action="store_true")
    p = add_command(ssub, "status", _stack_status, "show each service, its pid, port and log")
    setting_flag(p, "--state-dir", "stack.state_dir", "data, logs and pid files")
    plain_flag(p, "stack", "--json", "machine-readable output", action="store_true")

    dbp = sub.add_parser("db", help="the serving database")
    dsub = dbp.add_subparsers(dest="db_cmd", required=True)
    p = add_command(dsub, "migrate", _db_migrate, "apply pending SQL migrations")
    plain_flag(p, "db", "--schema", "target schema (default: the postgres.schema_name setting)")
    plain_flag(
        p,
        "db",
        "--create-roles",
        "first create the database and the writer and read-only roles (a fresh server)",
        action="store_true",
    )
