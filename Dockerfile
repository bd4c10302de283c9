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

# Only what `pip install .` needs (pyproject.toml, the readme it names and
# the notifier* and workers* packages); tests/unit/test_deploy_files.py
# keeps this list, .dockerignore and pyproject.toml in step.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY notifier/ notifier/
COPY workers/ workers/
RUN pip install . && rm -rf /src

WORKDIR /app
COPY templates/ /app/templates/
# A default configuration, so the image runs with no mount (Redis at host
# "redis"); docker-compose.yml mounts the same file over it.
COPY etc/docker/notifier.conf /etc/notifier/notifier.conf
COPY etc/notifier.conf.sample /etc/notifier/notifier.conf.sample

USER notifier
EXPOSE 8888
ENTRYPOINT ["notifier"]
CMD ["api", "--config-file", "/etc/notifier/notifier.conf"]
