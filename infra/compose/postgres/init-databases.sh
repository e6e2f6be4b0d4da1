#!/bin/sh
# The postgres image runs this once, on an empty data volume (/docker-entrypoint-initdb.d), after
# it created POSTGRES_DB (clv, the platform store): the other stores of docker-compose.yml, owned by
# POSTGRES_USER. To re-run it, remove the volume: `docker compose down --volumes`.
set -eu
for database in mlflow prefect optuna; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE \"$database\" OWNER \"$POSTGRES_USER\""
done
