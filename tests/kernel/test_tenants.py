"""Tenants beyond the one file: a ``tenants_dir`` of one file per comune, and tenants stored
in the database through ``sportello tenants add/remove/list`` and the admin API. Every way
in validates as start-up does, names the file (or the body) and the field of a mistake,
keeps secrets as references, and removing a tenant never deletes its data."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_contract import Contract
from click.testing import CliRunner
from factories import tenant
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello import apikeys, tenant_store
from sportello.api import models
from sportello.app import CLOCK, CONFIG, ENGINE, PLUGINS, RELOADER, SERVICES, create_app
from sportello.cli.main import main
from sportello.config import ConfigError, load_config, parse_config
from sportello.outbox import store
from sportello.outbox.store import NewJob
from sportello.schema import outbox as store_outbox
from sportello.schema import tenant_documents, tenants

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

BETA = """\
id = "beta"
name = "Comune di Beta"
ipa_code = "c_b002"
fiscal_code = "00000000002"
cadastral_code = "B002"

[pdnd]
client_id = "client-beta"
key = { file = "keys/beta-pdnd.pem" }
token_url = "https://auth.uat.interop.pagopa.it/token.oauth2"

[[webhooks]]
url = "https://gestionale.example.it/hook"
secret = { env = "BETA_HOOK" }
"""


def _toml_tenant(tid: str, fiscal_code: str = "00000000003") -> str:
    return (
        f'id = "{tid}"\nname = "Comune {tid}"\nipa_code = "c_{tid[:4]}"\n'
        f'fiscal_code = "{fiscal_code}"\ncadastral_code = "C003"\n'
    )


def _main_file(tmp_path: Path, db_url: str | None = None, *, folder: str = "tenants.d") -> Path:
    path = tmp_path / "sportello.toml"
    db = f'[database]\nurl = "{db_url}"\n\n' if db_url else ""
    path.write_text(
        f'tenants_dir = "{folder}"\n\n{db}[outbox]\nworkers = false\n\n'
        '[[tenants]]\nid = "alpha"\nname = "Comune di Alpha"\nipa_code = "c_a001"\n'
        'fiscal_code = "00000000001"\ncadastral_code = "A001"\n',
        encoding="utf-8",
    )
    (tmp_path / folder).mkdir(exist_ok=True)
    return path


# --- tenants_dir ------------------------------------------------------------------------------
def test_a_tenants_dir_adds_one_tenant_per_file_after_the_inline_ones(tmp_path: Path) -> None:
    main_file = _main_file(tmp_path)
    (tmp_path / "tenants.d" / "beta.toml").write_text(BETA, encoding="utf-8")
    (tmp_path / "tenants.d" / "gamma.toml").write_text(_toml_tenant("gamma"), encoding="utf-8")
    (tmp_path / "tenants.d" / "README.txt").write_text("not a tenant", encoding="utf-8")
    config = load_config(main_file)
    assert [t.id for t in config.tenants] == ["alpha", "beta", "gamma"]
    beta = config.tenant("beta")
    assert beta is not None and beta.pdnd is not None
    # relative paths in a tenant file resolve against the tenant file's folder
    assert beta.pdnd.key.file == (tmp_path / "tenants.d" / "keys" / "beta-pdnd.pem").resolve()
    assert beta.webhooks[0].secret is not None and beta.webhooks[0].secret.env == "BETA_HOOK"
    assert config.tenants_dir == tmp_path.resolve() / "tenants.d"
    assert config.stored_tenants == frozenset()


def test_a_bad_tenant_file_is_named_with_its_field(tmp_path: Path) -> None:
    main_file = _main_file(tmp_path)
    (tmp_path / "tenants.d" / "beta.toml").write_text(BETA, encoding="utf-8")
    bad = tmp_path / "tenants.d" / "delta.toml"
    bad.write_text(_toml_tenant("delta", fiscal_code="123") + 'pagopa_typo = "x"\n', "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(main_file)
    assert caught.value.path == str(bad)
    text = str(caught.value)
    assert f"{bad}: fiscal_code:" in text and f"{bad}: pagopa_typo: unknown field" in text


def test_an_inline_secret_in_a_tenant_file_is_refused(tmp_path: Path) -> None:
    main_file = _main_file(tmp_path)
    bad = tmp_path / "tenants.d" / "beta.toml"
    bad.write_text(BETA.replace('{ env = "BETA_HOOK" }', '"hunter2"'), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(main_file)
    assert "webhooks[0].secret" in str(caught.value) and "hunter2" not in str(caught.value)


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    main_file = _main_file(tmp_path)
    clash = tmp_path / "tenants.d" / "other-alpha.toml"
    clash.write_text(_toml_tenant("alpha"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(main_file)
    assert str(clash) in str(caught.value) and str(main_file) in str(caught.value)
    clash.unlink()
    first = tmp_path / "tenants.d" / "a.toml"
    second = tmp_path / "tenants.d" / "b.toml"
    first.write_text(_toml_tenant("gamma"), encoding="utf-8")
    second.write_text(_toml_tenant("gamma"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(main_file)
    assert caught.value.path == str(second) and str(first) in str(caught.value)


def test_a_missing_folder_and_bad_toml_are_named(tmp_path: Path) -> None:
    main_file = _main_file(tmp_path, folder="nowhere")
    (tmp_path / "nowhere").rmdir()
    with pytest.raises(ConfigError, match="tenants_dir: not a folder"):
        load_config(main_file)
    main_file = _main_file(tmp_path)
    broken = tmp_path / "tenants.d" / "x.toml"
    broken.write_text("id = ", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(main_file)
    assert caught.value.path == str(broken) and "invalid TOML" in str(caught.value)
    broken.write_text("tenants_dir = 3\n", encoding="utf-8")
    (tmp_path / "sportello.toml").write_text("tenants_dir = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="tenants_dir"):
        load_config(tmp_path / "sportello.toml")


def test_stored_tenants_cannot_be_claimed_by_a_file() -> None:
    with pytest.raises(ConfigError, match="stored_tenants: unknown field"):
        parse_config({"stored_tenants": ["alpha"]})


# --- the store --------------------------------------------------------------------------------
def _config(db_url: str | None = None) -> Any:
    data: dict[str, Any] = {"outbox": {"workers": False}, "tenants": [tenant("alpha")]}
    if db_url:
        data["database"] = {"url": db_url}
    return parse_config(data)


async def test_a_stored_tenant_round_trips_with_its_references(engine: AsyncEngine) -> None:
    config = _config()
    beta = tenant_store.check_document(
        {
            **tenant("beta", fiscal_code="00000000002"),
            "pdnd": {
                "client_id": "c",
                "key": {"file": "/run/secrets/beta.pem"},
                "token_url": "https://auth.uat.interop.pagopa.it/token.oauth2",
            },
            "webhooks": [{"url": "https://x.example.it/h", "secret": {"env": "BETA_HOOK"}}],
        },
        config,
        source="test",
    )
    async with engine.begin() as conn:
        assert await tenant_store.generation(conn) == 0
        assert await tenant_store.store(conn, beta, config, now=T0, actor="cli:op") is True
        assert await tenant_store.store(conn, beta, config, now=T0, actor="cli:op") is False
        assert await tenant_store.generation(conn) == 2
        doc = await conn.scalar(select(tenant_documents.c.document))
    assert "BETA_HOOK" in doc and "/run/secrets/beta.pem" in doc
    async with engine.connect() as conn:
        merged = await tenant_store.with_stored(conn, config)
    assert [t.id for t in merged.tenants] == ["alpha", "beta"]
    assert merged.tenant("beta") == beta
    assert merged.stored_tenants == frozenset({"beta"})
    assert tenant_store.file_tenant_ids(merged) == {"alpha"}
    # merging again (a reload) does not duplicate
    async with engine.connect() as conn:
        again = await tenant_store.with_stored(conn, merged)
    assert [t.id for t in again.tenants] == ["alpha", "beta"]


async def test_a_file_tenant_cannot_be_stored(engine: AsyncEngine) -> None:
    config = _config()
    alpha = config.tenant("alpha")
    async with engine.begin() as conn:
        with pytest.raises(tenant_store.TenantStoreError, match="change it there"):
            await tenant_store.store(conn, alpha, config, now=T0, actor="x")


async def test_removing_a_tenant_keeps_its_data(engine: AsyncEngine) -> None:
    config = _config()
    beta = tenant_store.check_document(tenant("beta"), config, source="t")
    async with engine.begin() as conn:
        await tenant_store.store(conn, beta, config, now=T0, actor="x")
        await store.enqueue_many(
            conn, [NewJob("beta", "webhook", {"n": 1})], now=T0, default_max_attempts=3
        )
    async with engine.begin() as conn:
        await tenant_store.remove(conn, "beta", now=T0)
        with pytest.raises(tenant_store.TenantStoreError, match="no tenant 'beta'"):
            await tenant_store.remove(conn, "beta", now=T0)
    async with engine.connect() as conn:
        merged = await tenant_store.with_stored(conn, config)
        assert [t.id for t in merged.tenants] == ["alpha"]
        assert len(await store.list_rows(conn, tenant_id="beta")) == 1
        assert await conn.scalar(select(func.count()).where(tenants.c.id == "beta")) == 1
        assert await tenant_store.generation(conn) == 2


async def test_a_stored_tenant_that_no_longer_validates_is_skipped_and_logged(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config()
    async with engine.begin() as conn:
        for tid in ("beta", "gamma", "alpha"):
            await conn.execute(
                insert(tenant_documents).values(
                    tenant_id=tid,
                    document=json.dumps(tenant(tid)),
                    created_at=T0,
                    updated_at=T0,
                    updated_by="x",
                )
            )
        await conn.execute(
            update(tenant_documents)
            .where(tenant_documents.c.tenant_id == "gamma")
            .values(document=json.dumps({**tenant("gamma"), "gone_section": {}}))
        )
    with caplog.at_level(logging.ERROR, logger="sportello.tenants"):
        async with engine.connect() as conn:
            merged = await tenant_store.with_stored(conn, config)
    assert [t.id for t in merged.tenants] == ["alpha", "beta"]
    assert merged.stored_tenants == frozenset({"beta"})
    assert "database tenant gamma" in caplog.text and "gone_section" in caplog.text
    assert "database tenant alpha: id is also configured" in caplog.text


# --- admin API --------------------------------------------------------------------------------
def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_admin_api_stores_lists_and_removes_tenants(db_url: str) -> None:
    config = _config(db_url)
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        now = app[CLOCK].now()
        async with app[ENGINE].begin() as conn:
            admin = await apikeys.create(
                conn, tenant_id=None, name="ops", scopes=["admin"], now=now
            )
            tenant_key = await apikeys.create(
                conn, tenant_id="alpha", name="g", scopes=["read", "write"], now=now
            )
        contract = Contract(await (await client.get("/api/v1/openapi.json")).json())
        url = "/api/v1/admin/tenants/beta"
        body = tenant("beta", fiscal_code="00000000002")

        r = await client.put(url, json=body, headers=auth(tenant_key))
        assert r.status == 403
        assert (await client.get("/api/v1/admin/tenants", headers=auth(tenant_key))).status == 403
        assert (await client.put(url, json=body)).status == 401

        bad = {**body, "fiscal_code": "12", "webhooks": [{"url": "x", "secret": "hunter2"}]}
        r = await client.put(url, json=bad, headers=auth(admin))
        problem = await r.json()
        assert r.status == 400 and r.content_type == "application/problem+json"
        assert any(e.startswith("fiscal_code:") for e in problem["errors"])
        assert any(e.startswith("webhooks[0].secret:") for e in problem["errors"])
        assert "hunter2" not in await r.text()
        for junk in (b"[1", b"[]", b'"x"', b"null"):
            r = await client.put(url, data=junk, headers=auth(admin))
            assert r.status == 400, junk
        r = await client.put("/api/v1/admin/tenants/other", json=body, headers=auth(admin))
        assert r.status == 400 and "differs" in (await r.json())["detail"]
        r = await client.put(
            "/api/v1/admin/tenants/alpha", json=tenant("alpha"), headers=auth(admin)
        )
        assert r.status == 409

        r = await client.put(url, json=body, headers=auth(admin))
        assert r.status == 201
        models.StoredTenant.model_validate(await r.json())  # the documented answer
        assert (await r.json())["updated_by"].startswith("apikey:")
        r = await client.put(url, json={**body, "name": "Beta 2"}, headers=auth(admin))
        assert r.status == 200 and (await r.json())["name"] == "Beta 2"
        r = await client.get("/api/v1/admin/tenants", headers=auth(admin))
        listing = await r.json()
        contract.check("/api/v1/admin/tenants", 200, listing, r.content_type)
        assert [t["id"] for t in listing["items"]] == ["beta"]

        r = await client.delete("/api/v1/admin/tenants/nope", headers=auth(admin))
        assert r.status == 404
        r = await client.delete("/api/v1/admin/tenants/alpha", headers=auth(admin))
        assert r.status == 404  # a file tenant is not stored: nothing to remove here

    # a hub started now serves the stored tenant
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        assert client.app[CONFIG].tenant("beta") is not None
        assert client.app[CONFIG].tenant("beta").name == "Beta 2"
        r = await client.get("/api/v1/tenants/beta", headers=auth(admin))
        assert r.status == 200 and (await r.json())["name"] == "Beta 2"
        r = await client.delete("/api/v1/admin/tenants/beta", headers=auth(admin))
        assert r.status == 204
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        assert client.app[CONFIG].tenant("beta") is None
        assert (await client.get("/api/v1/tenants/beta", headers=auth(admin))).status == 404


# --- CLI --------------------------------------------------------------------------------------
def test_the_cli_adds_lists_and_removes_tenants(tmp_path: Path, db_url: str) -> None:
    main_file = _main_file(tmp_path, db_url)
    (tmp_path / "tenants.d" / "beta.toml").write_text(BETA, encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(main, ["db", "upgrade", "--config", str(main_file)])
    assert r.exit_code == 0, r.output
    gamma = tmp_path / "gamma.toml"
    gamma.write_text(_toml_tenant("gamma", fiscal_code="12"), encoding="utf-8")
    r = runner.invoke(main, ["tenants", "add", "--config", str(main_file), str(gamma)])
    assert r.exit_code == 2 and f"{gamma}: fiscal_code" in r.output
    gamma.write_text(_toml_tenant("gamma"), encoding="utf-8")
    r = runner.invoke(main, ["tenants", "add", "--config", str(main_file), str(gamma)])
    assert r.exit_code == 0 and "tenant gamma added" in r.output
    r = runner.invoke(
        main, ["tenants", "add", "--config", str(main_file), str(tmp_path / "tenants.d/beta.toml")]
    )
    assert r.exit_code == 1 and "change it there" in r.output
    delta = tmp_path / "new" / "delta.toml"
    delta.parent.mkdir()
    delta.write_text(
        _toml_tenant("delta", "00000000004")
        + '[[webhooks]]\nurl = "https://x.example.it/h"\nsecret = { file = "hook.secret" }\n',
        encoding="utf-8",
    )
    r = runner.invoke(main, ["tenants", "add", "--config", str(main_file), str(delta)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["tenants", "remove", "--config", str(main_file), "delta"])
    stored = load_config(main_file)

    async def documents() -> list[str]:
        from sportello.db import create_engine

        engine = create_engine(stored.database)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(select(tenant_documents.c.document))).scalars())
        finally:
            await engine.dispose()

    # the relative secret path was stored resolved against the tenant file's folder
    assert not any("hook.secret" in d for d in asyncio.run(documents()))  # delta removed
    r = runner.invoke(main, ["tenants", "add", "--config", str(main_file), str(delta)])
    assert any(str(delta.parent.resolve() / "hook.secret") in d for d in asyncio.run(documents()))
    r = runner.invoke(main, ["tenants", "remove", "--config", str(main_file), "delta"])
    assert r.exit_code == 0
    r = runner.invoke(main, ["tenants", "list", "--json", "--config", str(main_file)])
    assert r.exit_code == 0, r.output
    listed = {t["id"]: t["source"] for t in json.loads(r.output)}
    assert listed == {"alpha": "file", "beta": "file", "gamma": "database"}
    r = runner.invoke(main, ["tenants", "remove", "--config", str(main_file), "gamma"])
    assert r.exit_code == 0 and "data is kept" in r.output
    r = runner.invoke(main, ["tenants", "remove", "--config", str(main_file), "gamma"])
    assert r.exit_code == 1 and "no tenant 'gamma'" in r.output
    r = runner.invoke(main, ["tenants", "list", "--config", str(main_file)])
    assert r.exit_code == 0 and "gamma" not in r.output and "beta" in r.output

    # reload: the file is checked here first; a bad one moves nothing
    r = runner.invoke(main, ["tenants", "reload", "--config", str(main_file)])
    assert r.exit_code == 0 and "configuration generation 7" in r.output
    bad = tmp_path / "tenants.d" / "zeta.toml"
    bad.write_text(_toml_tenant("zeta", fiscal_code="1"), encoding="utf-8")
    r = runner.invoke(main, ["tenants", "reload", "--config", str(main_file)])
    assert r.exit_code == 2 and f"{bad}: fiscal_code" in r.output
    bad.unlink()
    r = runner.invoke(main, ["tenants", "reload", "--config", str(main_file)])
    assert r.exit_code == 0 and "configuration generation 8" in r.output


# --- reload across replicas -------------------------------------------------------------------
async def _until(predicate: Any, seconds: float = 8.0) -> float:
    """Seconds until ``await predicate()`` is true (fails after ``seconds``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await predicate():
        assert loop.time() - start < seconds, "not within the time allowed"
        await asyncio.sleep(0.05)
    return loop.time() - start


async def test_two_replicas_follow_added_bad_and_removed_tenants(
    tmp_path: Path, db_url: str
) -> None:
    main_file = _main_file(tmp_path, db_url)
    text = main_file.read_text(encoding="utf-8")
    poll = "[periodic]\nconfig_poll_seconds = 0.2\n\n[outbox]"
    main_file.write_text(text.replace("[outbox]", poll), encoding="utf-8")
    (tmp_path / "tenants.d" / "beta.toml").write_text(BETA, encoding="utf-8")
    config = load_config(main_file)
    apps = [create_app(config, apply_migrations=True), create_app(config)]
    async with (
        TestClient(TestServer(apps[0])) as one,
        TestClient(TestServer(apps[1])) as two,
    ):
        clients = (one, two)
        async with apps[0][ENGINE].begin() as conn:
            admin = await apikeys.create(conn, tenant_id=None, name="ops", scopes=["admin"], now=T0)

        async def served(tid: str, *, on: tuple[TestClient, ...] = clients) -> bool:
            for c in on:
                if (await c.get(f"/api/v1/tenants/{tid}", headers=auth(admin))).status != 200:
                    return False
            return True

        async def gone(tid: str) -> bool:
            for c in clients:
                if (await c.get(f"/api/v1/tenants/{tid}", headers=auth(admin))).status != 404:
                    return False
            return True

        assert await served("alpha") and await served("beta") and await gone("gamma")

        # added as `sportello tenants add` does, from another process: both serve it
        async with apps[0][ENGINE].begin() as conn:
            gamma = tenant_store.check_document(tenant("gamma"), config, source="t")
            await tenant_store.store(conn, gamma, config, now=T0, actor="cli:op")
            await store.enqueue_many(
                conn, [NewJob("gamma", "webhook", {"n": 1})], now=T0, default_max_attempts=3
            )
        assert await _until(lambda: served("gamma")) < 5

        async def rebuilt() -> bool:  # the whole layer, not only the configuration
            return all(
                app[SERVICES].config.tenant("gamma") is not None and app[RELOADER].reloads
                for app in apps
            )

        await _until(rebuilt)
        assert all(app[RELOADER].last_error is None for app in apps)

        # a bad tenant file: refused with its path and field, the running tenants stay
        bad = tmp_path / "tenants.d" / "delta.toml"
        bad.write_text(_toml_tenant("delta", fiscal_code="99"), encoding="utf-8")
        async with apps[0][ENGINE].begin() as conn:
            await tenant_store.bump_generation(conn, now=T0)  # `sportello tenants reload`

        async def refused() -> bool:
            return all(
                app[RELOADER].last_error and str(bad) in app[RELOADER].last_error for app in apps
            )

        await _until(refused)
        assert "fiscal_code" in (apps[1][RELOADER].last_error or "")
        assert await served("alpha") and await served("beta") and await served("gamma")
        assert await gone("delta")

        # fixed: applied by SIGHUP's path on one replica, and by the generation on the other
        bad.write_text(_toml_tenant("delta"), encoding="utf-8")
        result = await apps[0][RELOADER].reload()
        assert result.ok and result.added == ("delta",)
        assert await served("delta", on=(one,))
        async with apps[0][ENGINE].begin() as conn:
            await tenant_store.bump_generation(conn, now=T0)
        await _until(lambda: served("delta"))

        # a changed tenant is applied; a removed one is gone and its data stays
        async with apps[0][ENGINE].begin() as conn:
            renamed = tenant_store.check_document(
                {**tenant("gamma"), "name": "Gamma 2"}, config, source="t"
            )
            await tenant_store.store(conn, renamed, config, now=T0, actor="cli:op")

        async def renamed_everywhere() -> bool:
            return all(app[CONFIG].tenant("gamma").name == "Gamma 2" for app in apps)

        await _until(renamed_everywhere)
        async with apps[0][ENGINE].begin() as conn:
            await tenant_store.remove(conn, "gamma", now=T0)
        assert await _until(lambda: gone("gamma")) < 5
        assert await served("alpha") and await served("beta") and await served("delta")
        async with apps[1][ENGINE].connect() as conn:
            assert len(await store.list_rows(conn, tenant_id="gamma")) == 1


async def test_a_reload_that_fails_to_build_keeps_the_running_layer(db_url: str) -> None:
    config = _config(db_url)
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        reloader = app[RELOADER]
        before = (app[CONFIG], app[SERVICES], reloader.layer)

        def boom(*args: Any, **kwargs: Any) -> list[Any]:
            raise RuntimeError("a platform failed")

        app[PLUGINS].platform_setups = boom  # type: ignore[method-assign]
        async with app[ENGINE].begin() as conn:
            beta = tenant_store.check_document(tenant("beta"), config, source="t")
            await tenant_store.store(conn, beta, config, now=T0, actor="x")
        result = await reloader.reload()
        assert not result.ok and "a platform failed" in (result.error or "")
        assert (app[CONFIG], app[SERVICES], reloader.layer) == before
        assert app[CONFIG].tenant("beta") is None
        async with app[ENGINE].begin() as conn:
            await apikeys.create(conn, tenant_id=None, name="o", scopes=["admin"], now=T0)
        r = await client.get("/healthz")
        assert r.status == 200


async def test_a_reload_rebuilds_periodic_tasks_and_closes_the_old_layer(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import asynccontextmanager

    from sportello import reload
    from sportello.app import PERIODIC
    from sportello.hookspecs import hookimpl
    from sportello.periodic import PeriodicTask
    from sportello.plugins import Plugins

    monkeypatch.setattr(reload, "CLOSE_GRACE", 0.0)
    events: list[str] = []

    class Acme:
        @hookimpl
        def hub_periodic_tasks(self, config: Any, app: Any) -> list[PeriodicTask]:
            async def round_() -> None:
                return None

            return [
                PeriodicTask(f"acme:{t.id}", 60.0, round_, exclusive=False) for t in config.tenants
            ]

        @hookimpl
        def hub_platform_setup(self, services: Any, app: Any) -> Any:
            @asynccontextmanager
            async def ctx() -> Any:
                ids = ",".join(t.id for t in services.config.tenants)
                events.append(f"open {ids}")
                yield
                events.append(f"close {ids}")

            return ctx()

    config = _config(db_url)
    plugins = Plugins(config.plugins.disabled)
    plugins.register(Acme(), name="acme")
    app = create_app(config, apply_migrations=True, plugins=plugins)
    async with TestClient(TestServer(app)):
        assert [t.name for t in app[PERIODIC].tasks] == ["acme:alpha"]
        async with app[ENGINE].begin() as conn:
            beta = tenant_store.check_document(tenant("beta"), config, source="t")
            await tenant_store.store(conn, beta, config, now=T0, actor="x")
        assert (await app[RELOADER].reload()).added == ("beta",)
        assert sorted(t.name for t in app[PERIODIC].tasks) == ["acme:alpha", "acme:beta"]
        async with app[ENGINE].begin() as conn:
            await tenant_store.remove(conn, "beta", now=T0)
        assert (await app[RELOADER].reload()).removed == ("beta",)
        assert [t.name for t in app[PERIODIC].tasks] == ["acme:alpha"]
        await _until(lambda: _true(events.count("close alpha,beta") == 1))
        assert (await app[RELOADER].reload()) == reload.ReloadResult()  # nothing changed
    assert events == [
        "open alpha",
        "open alpha,beta",
        "close alpha",
        "open alpha",
        "close alpha,beta",
        "close alpha",
    ]


async def _true(value: bool) -> bool:
    return value


async def test_sighup_reloads_a_serving_hub(db_url: str) -> None:
    import os
    import signal

    config = _config(db_url)
    app = create_app(config, apply_migrations=True, sighup=True)
    async with TestClient(TestServer(app)):
        async with app[ENGINE].begin() as conn:  # stored without moving the generation
            await conn.execute(
                insert(tenant_documents).values(
                    tenant_id="beta",
                    document=json.dumps(tenant("beta")),
                    created_at=T0,
                    updated_at=T0,
                    updated_by="x",
                )
            )
        await asyncio.sleep(0.3)
        assert app[CONFIG].tenant("beta") is None
        os.kill(os.getpid(), signal.SIGHUP)
        await _until(lambda: _true(app[CONFIG].tenant("beta") is not None), seconds=3)


def test_tenants_status_shows_ready_missing_and_the_last_error(tmp_path: Path, db_url: str) -> None:
    main_file = _main_file(tmp_path, db_url)
    (tmp_path / "tenants.d" / "beta.toml").write_text(BETA, encoding="utf-8")  # key file absent
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(main_file)]).exit_code == 0
    r = runner.invoke(main, ["tenants", "status", "--json", "--config", str(main_file)])
    assert r.exit_code == 1, r.output
    rows = {row["tenant"]: row for row in json.loads(r.output)}
    assert rows["alpha"]["platforms"] == {} and rows["alpha"]["last_error"] is None
    pdnd = rows["beta"]["platforms"]["pdnd"]
    assert pdnd["state"] == "missing" and any("beta-pdnd.pem" in p for p in pdnd["missing"])
    assert any("BETA_HOOK" in m for m in rows["beta"]["platforms"]["webhooks"]["missing"])

    key = tmp_path / "tenants.d" / "keys" / "beta-pdnd.pem"
    key.parent.mkdir()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key.write_bytes(pem)
    key.chmod(0o600)
    config = load_config(main_file)

    async def fail_a_job() -> None:
        from sportello.db import create_engine

        engine = create_engine(config.database)
        try:
            async with engine.begin() as conn:
                await store.enqueue_many(
                    conn, [NewJob("alpha", "webhook", {"n": 1})], now=T0, default_max_attempts=3
                )
                await conn.execute(
                    update(store_outbox).values(status="failed", last_error="HTTP 503 [upstream]")
                )
        finally:
            await engine.dispose()

    asyncio.run(fail_a_job())
    r = runner.invoke(
        main, ["tenants", "status", "--json", "--config", str(main_file)], env={"BETA_HOOK": "x"}
    )
    rows = {row["tenant"]: row for row in json.loads(r.output)}
    assert r.exit_code == 0, r.output
    # nothing missing; no purpose to ask a voucher for: nothing to check
    assert rows["beta"]["platforms"]["pdnd"]["state"] == "configured"
    assert rows["beta"]["platforms"]["pdnd"]["missing"] == []
    assert "webhook: HTTP 503 [upstream]" in rows["alpha"]["last_error"]
    assert "[upstream]" in rows["alpha"]["platforms"]["webhooks"]["last_error"]
    r = runner.invoke(
        main, ["tenants", "status", "--config", str(main_file)], env={"BETA_HOOK": "x"}
    )
    assert r.exit_code == 0 and "configured" in r.output and "[upstream]" in r.output


def test_tenants_list_without_a_current_database_shows_the_files(tmp_path: Path) -> None:
    main_file = _main_file(tmp_path, f"sqlite:///{tmp_path}/never-migrated.sqlite")
    (tmp_path / "tenants.d" / "beta.toml").write_text(BETA, encoding="utf-8")
    r = CliRunner().invoke(main, ["tenants", "list", "--json", "--config", str(main_file)])
    assert r.exit_code == 0
    assert "database's tenants are not shown" in r.stderr
    assert [t["id"] for t in json.loads(r.stdout)] == ["alpha", "beta"]
