# notifier: one image for every role. The role is the command:
#   docker run IMAGE api|worker|scheduler --config-file /etc/notifier/notifier.conf
#   docker run IMAGE healthcheck worker --config-file /etc/notifier/notifier.conf
# docker-compose.yml runs Redis, the three roles and a mail catcher.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --user-group --uid 10001 --home-dir /app \
        --no-create-home --shell /usr/sbin/nologin notifier

# Only what building the wheel needs (pyproject.toml, the readme it names,
# the packages it lists and templates/, shipped inside the wheel) and the
# runtime lock; tests/unit/test_deploy_files.py keeps this list,
# .dockerignore and pyproject.toml in step. The same steps as
# tests/install/test_wheel.py: the locked versions, hash-checked, then the
# wheel alone with no extras.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/runtime.txt requirements/runtime.txt
COPY notifier/ notifier/
COPY workers/ workers/
COPY templates/ templates/
RUN pip install --require-hashes -r requirements/runtime.txt \
    && pip wheel --no-deps -w /tmp/dist . \
    && pip install --no-deps /tmp/dist/notifier-*.whl \
    && rm -rf /src /tmp/dist

WORKDIR /app
# A default configuration, so the image runs with no mount (Redis at host
# "redis"); docker-compose.yml mounts the same file over it.
COPY etc/docker/notifier.conf /etc/notifier/notifier.conf
COPY etc/notifier.conf.sample /etc/notifier/notifier.conf.sample

USER notifier
EXPOSE 8888
ENTRYPOINT ["notifier"]
CMD ["api", "--config-file", "/etc/notifier/notifier.conf"]
