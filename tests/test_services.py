"""The harness itself: private servers start on loopback, stop and come back."""

import paho.mqtt.client as mqtt
import psycopg

from mes.services.broker import BrokerServer
from mes.services.postgres import PostgresServer


def test_postgres_restart_keeps_data(postgres_factory) -> None:
    pg: PostgresServer = postgres_factory()
    with psycopg.connect(pg.url(), autocommit=True) as c:
        c.execute("create table t (x int)")
        c.execute("insert into t values (1)")
    pg.stop(mode="kill")
    pg.start()
    with psycopg.connect(pg.url()) as c:
        assert c.execute("select x from t").fetchone() == (1,)


def test_broker_listens_on_loopback(broker_server: BrokerServer) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    assert client.connect(broker_server.host, broker_server.port) == mqtt.MQTT_ERR_SUCCESS
    client.disconnect()
    assert broker_server.host == "127.0.0.1"
