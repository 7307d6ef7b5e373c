#!/usr/bin/env bash
# Apache Kafka's broker jars for `make test-kafka`: the pinned version's kafka_2.13 (the broker and
# controller, kafka.Kafka, and the storage formatter), kafka-tools (the metadata quorum's describe) and their
# runtime dependencies, copied from Maven Central by `mvn dependency:copy-dependencies` (tools/kafka/pom.xml
# pins them) into build/kafka/<version>/libs, once. Prints that folder; `java -cp '<libs>/*' kafka.Kafka ...`
# runs a node. KAFKA_VERSION overrides the pom's version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pom=$root/tools/kafka/pom.xml
version=${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")}
dest=$root/build/kafka/$version
if [ -f "$dest/.complete" ]; then echo "$dest/libs"; exit 0; fi
command -v java >/dev/null 2>&1 || { echo "tools/kafka.sh: needs java (17 or newer) on PATH" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "tools/kafka.sh: needs mvn (Maven) on PATH" >&2; exit 1; }
rm -rf "$dest.partial" && mkdir -p "$dest.partial"
echo "tools/kafka.sh: fetching Apache Kafka $version from Maven Central" >&2
mvn -q -B -Dstyle.color=never -f "$pom" -Dkafka.version="$version" dependency:copy-dependencies -DincludeScope=runtime \
  -DoutputDirectory="$dest.partial/libs" >&2
ls "$dest.partial/libs/kafka_2.13-$version.jar" >/dev/null
cp "$root/tools/kafka/log4j2.properties" "$dest.partial/"
rm -rf "$dest" && mv "$dest.partial" "$dest" && touch "$dest/.complete"
echo "$dest/libs"
