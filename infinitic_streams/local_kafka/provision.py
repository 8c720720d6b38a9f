"""Fetch a pinned Apache Kafka broker from Maven Central into a cache directory, once.

Kafka publishes its broker classes (`kafka.Kafka`, `kafka.tools.StorageTool`) in the
`org.apache.kafka:kafka_2.13` jar. Maven resolves it with its runtime dependencies; we add the
log4j SLF4J binding that the release tarballs ship (no pom brings it; without it the broker runs
but logs nothing). The jars land in `<cache>/kafka-<version>/libs` and are reused afterwards.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from infinitic_streams.errors import InfiniticError

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # the log4j version Kafka 4.1.1 is built with
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
MIN_JAVA = 17

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.infinitic.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId>
    <version>{plugin}</version>
  </plugin></plugins></build>
</project>
"""


class LocalKafkaError(InfiniticError):
    """The local broker cannot be provisioned, started or stopped; the message says the fix."""


def default_cache_dir() -> Path:
    """`$INFINITIC_CACHE_DIR`, else `$XDG_CACHE_HOME/infinitic-streams`, else `~/.cache/...`."""
    if explicit := os.environ.get("INFINITIC_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "infinitic-streams"


def java_command() -> str:
    """The `java` to run the broker with: `$JAVA_HOME/bin/java` if set, else the one on PATH."""
    if home := os.environ.get("JAVA_HOME"):
        candidate = Path(home) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise LocalKafkaError(
            f"Java {MIN_JAVA}+ is needed to run the local Kafka broker, and no `java` was found. "
            f"Install a JDK {MIN_JAVA} or newer (e.g. `apt-get install openjdk-17-jre-headless`) "
            "or set JAVA_HOME, or point INFINITIC_KAFKA at an existing Kafka cluster."
        )
    return found


def check_java(java: str) -> int:
    """Return the major version of `java`, or raise if it is older than Kafka 4 needs."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise LocalKafkaError(f"Could not read the version of {java}: {out.stderr.strip()!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style versions
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise LocalKafkaError(
            f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but {java} is Java {major}. "
            f"Install a JDK {MIN_JAVA} or newer and put it first on PATH or in JAVA_HOME."
        )
    return major


def ensure_jars(cache_dir: Path, log=print) -> Path:
    """Return the folder of the broker's jars, downloading them with Maven the first time.

    1. If `<cache>/kafka-<version>/libs/.complete` exists, the jars are there: done.
    2. Take a file lock so parallel callers download once.
    3. Run `mvn dependency:copy-dependencies` on a generated pom into a temporary folder.
    4. Move the folder into place and write the `.complete` marker last.
    """
    home = cache_dir / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if (libs / ".complete").exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / ".complete").exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
                "Maven (`mvn`) is needed once to download the Kafka broker from Maven Central, "
                "and it is not on PATH. Install it (e.g. `apt-get install maven`), or point "
                "INFINITIC_KAFKA at an existing Kafka cluster."
            )
        log(f"Downloading Apache Kafka {KAFKA_VERSION} from Maven Central (first run only)...")
        _download(mvn, home, libs)
    return libs


def _download(mvn: str, home: Path, libs: Path) -> None:
    with tempfile.TemporaryDirectory(dir=home) as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(
            _POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION, plugin=DEPENDENCY_PLUGIN_VERSION)
        )
        staged = Path(work) / "libs"
        command = [
            mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staged}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not any(staged.glob("kafka_2.13-*.jar")):
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise LocalKafkaError(
                f"Downloading Kafka {KAFKA_VERSION} from Maven Central failed "
                f"(mvn exit code {done.returncode}). Check that this machine reaches Maven "
                "Central (or a mirror in ~/.m2/settings.xml), then run the command again.\n"
                f"Last lines of Maven's output:\n{tail}"
            )
        (staged / ".complete").write_text(KAFKA_VERSION + "\n")
        if libs.exists():
            shutil.rmtree(libs)
        staged.rename(libs)
