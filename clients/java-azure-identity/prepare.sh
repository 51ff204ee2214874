#!/usr/bin/env bash
# Builds target/client.jar (one runnable jar) from pom.xml, in the folder it is run in.
# Run by the harness in a writable copy of clients/java-azure-identity. Needs a JDK >= 17 and Maven;
# the dependencies come from Maven Central into the usual local repository (~/.m2).
set -euo pipefail

need() {
  echo "prepare.sh: $1. Install a JDK 17 or later and Maven (Debian: apt-get install openjdk-17-jdk-headless maven)." >&2
  exit 1
}

command -v java >/dev/null 2>&1 || need "java not found"
command -v javac >/dev/null 2>&1 || need "javac not found (a JRE alone cannot build)"
command -v mvn >/dev/null 2>&1 || need "mvn not found"
# "17.0.15", "21", or "1.8.0_392" (which is 8)
v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
major=${v#1.}; major=${major%%.*}
[[ "$major" =~ ^[0-9]+$ ]] && (( major >= 17 )) || need "java $v found, 17 or later required"

# Idempotent: nothing to do when the jar is newer than everything it is built from.
jar=target/client.jar
if [[ -f $jar ]] && [[ -z $(find pom.xml src -newer "$jar" -print -quit) ]]; then
  exit 0
fi
mvn -q -B package -DskipTests
[[ -f $jar ]] || { echo "prepare.sh: the build did not produce $jar" >&2; exit 1; }
