# pd-planner controller image: `planner control --config /etc/pd-planner/controller.yaml`.
# Stage 1 builds the package and its dependencies into a virtual environment; stage 2 copies only
# that environment onto a slim runtime and runs it as an unprivileged user (uid 65532, as the
# chart's securityContext expects; the root file system can be read-only: only /tmp is written).
# Python 3.11, the version `make test` runs the suite on (a 3.12 image resolved PuLP 4, which the solver code does not
# run on, before pyproject capped it: what ships is what is tested).
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/pd-planner
ENV PATH=/opt/pd-planner/bin:$PATH
COPY pyproject.toml README.md ./
COPY planner ./planner
COPY profiles ./profiles
COPY solvers ./solvers
COPY controllers ./controllers
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --gid 65532 planner && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin planner
COPY --from=build /opt/pd-planner /opt/pd-planner
ENV PATH=/opt/pd-planner/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
EXPOSE 9100
ENTRYPOINT ["planner"]
CMD ["control", "--config", "/etc/pd-planner/controller.yaml"]
