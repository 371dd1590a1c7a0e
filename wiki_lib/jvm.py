"""JVM dependencies: resolve them once with Maven, find them at run time.

The broker jars and the Spark Kafka connector go to two folders under
``settings.jvm.jars_dir`` so the two ``kafka-clients`` versions never meet on one
classpath. The connector is resolved at exactly ``pyspark.__version__``; a job refuses to
start if the jars on disk were resolved for another Spark.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wiki_lib.config import JvmSettings
from wiki_lib.errors import PrerequisiteError

__all__ = [
    "JarSet",
    "broker_classpath",
    "connector_jars",
    "java_major_version",
    "pyspark_version",
    "require_java",
    "setup_jars",
]

MIN_JAVA = 17
_CONNECTOR = "spark-sql-kafka-0-10_2.13-{version}.jar"


@dataclass(frozen=True)
class JarSet:
    """What ``setup_jars`` resolved."""

    broker_dir: Path
    spark_dir: Path
    spark_version: str
    broker_jars: int
    connector_jars: int


def pyspark_version() -> str:
    """The installed pyspark version, which the connector must match exactly."""
    import pyspark

    return pyspark.__version__


def java_major_version(java: str = "java") -> int:
    """Major version of ``java``, or a PrerequisiteError saying how to install it."""
    exe = shutil.which(java)
    if exe is None:
        raise PrerequisiteError(
            f"Java not found ({java!r}); install a JDK {MIN_JAVA}+ "
            "(apt-get install openjdk-17-jdk-headless, or conda install openjdk=17)"
        )
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise PrerequisiteError(f"cannot read the Java version from: {out.stderr.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java(java: str = "java") -> int:
    """Fail clearly unless Java ``MIN_JAVA`` or newer is available."""
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise PrerequisiteError(
            f"Java {major} found, Kafka 4 and Spark 4 need Java {MIN_JAVA}+; "
            "install openjdk-17-jdk-headless or set WIKI__JVM__JAVA"
        )
    return major


def _maven(settings: JvmSettings, profile: str, out_dir: Path, extra: list[str]) -> None:
    mvn = shutil.which(settings.maven)
    if mvn is None:
        raise PrerequisiteError(
            f"Maven not found ({settings.maven!r}); install it (apt-get install maven, "
            "or conda install maven) or set WIKI__JVM__MAVEN"
        )
    if not settings.pom.is_file():
        raise PrerequisiteError(f"the JVM manifest {settings.pom} is missing")
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(settings.pom),
        "-P",
        profile,
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out_dir}",
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise PrerequisiteError(f"Maven could not resolve the {profile} jars:\n{tail}")


def setup_jars(settings: JvmSettings) -> JarSet:
    """Resolve the broker and connector jars with Maven (idempotent, offline when cached)."""
    require_java(settings.java)
    version = pyspark_version()
    broker_dir = settings.jars_dir / "broker"
    spark_dir = settings.jars_dir / f"spark-{version}"
    _maven(settings, "broker", broker_dir, [])
    _maven(settings, "spark", spark_dir, [f"-Dspark.version={version}"])
    return JarSet(
        broker_dir=broker_dir,
        spark_dir=spark_dir,
        spark_version=version,
        broker_jars=len(list(broker_dir.glob("*.jar"))),
        connector_jars=len(list(spark_dir.glob("*.jar"))),
    )


def broker_classpath(settings: JvmSettings) -> str:
    """The classpath for running the Kafka broker and its tools."""
    broker_dir = settings.jars_dir / "broker"
    if not any(broker_dir.glob("kafka_2.13-*.jar")):
        raise PrerequisiteError(f"no Kafka jars in {broker_dir}; run `wikipulse setup` first")
    return str(broker_dir / "*")


def connector_jars(settings: JvmSettings) -> list[Path]:
    """The connector jars for the installed pyspark, checked for an exact version match."""
    version = pyspark_version()
    spark_dir = settings.jars_dir / f"spark-{version}"
    if not (spark_dir / _CONNECTOR.format(version=version)).is_file():
        found = sorted(p.name for p in settings.jars_dir.glob("spark-*"))
        raise PrerequisiteError(
            f"no spark-sql-kafka connector for pyspark {version} in {settings.jars_dir} "
            f"(found: {found or 'nothing'}); run `wikipulse setup`"
        )
    return sorted(spark_dir.glob("*.jar"))
