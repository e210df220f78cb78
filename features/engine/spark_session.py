"""The Spark session the product runs on: the cluster's own when one is active (Databricks), otherwise a
local one built from settings (`spark_master`, default `local[2]`), offline, in UTC, with no web UI.

PySpark is an optional extra (`pip install 'phm-intelligence[spark]'`); nothing imports it at module
level, so the embedded DuckDB engine never needs it.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from features.engine.base import EngineError
from phm.core.settings import Settings
from phm.core.threads import WAIT_POLICY, wait_policy

LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",  # no web server, no port
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",  # adaptive execution coalesces further
    "spark.sql.adaptive.enabled": "true",
}
ALWAYS = {
    "spark.sql.session.timeZone": "UTC",  # dates and times as DuckDB reads them
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.hadoop.fs.permissions.umask-mode": "077",  # Hadoop sets file modes itself: owner-only, as PHM_HOME is
}


def pyspark() -> Any:
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError(
            "the Spark engine needs PySpark: pip install 'phm-intelligence[spark]' (and Java 17 on the machine)"
        ) from exc
    return SparkSession


def spark_session(settings: Settings) -> Any:
    """The active Spark session, or a new local one configured from `settings`."""
    SparkSession = pyspark()
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in {**ALWAYS, **settings.spark_conf}.items():
            try:
                active.conf.set(key, value)
            except Exception:  # noqa: BLE001 - static settings of a running cluster cannot change
                pass
        return active
    # Python workers (pandas UDFs, mapInPandas) must run this interpreter, with pandas and LightGBM
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.spark_master).appName("phm")
    conf = {
        **LOCAL_DEFAULTS,
        **ALWAYS,
        "spark.sql.warehouse.dir": str(settings.home / "spark" / "warehouse"),
        f"spark.executorEnv.{WAIT_POLICY}": wait_policy(),  # LightGBM in the Python workers: idle threads sleep
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}",
        **settings.spark_conf,
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
