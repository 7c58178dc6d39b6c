"""Fixtures of the server tests: an app on the test's store, and its client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from servertools import make_app


@pytest.fixture
def app(store_url: str) -> Iterator[Flask]:
    app = make_app(store_url)
    yield app
    app.extensions["labnotebook"].store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
