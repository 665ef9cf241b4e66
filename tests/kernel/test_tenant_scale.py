"""Thousands of tenants: the look-ups and caches that keep a request's cost independent of
the tenant count (bench/tenants measures it), and that stay correct when tenants change."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sportello import app as app_module
from sportello import config as config_module
from sportello import readiness, toml_files
from sportello.app import CONFIG, READINESS, RELOADER, create_app
from sportello.config import ConfigError, load_config, parse_config
from sportello.connectors.pdnd.keys import InvalidKeyError, generate_key, load_private_key
from sportello.platforms.login import idps as idps_module
from sportello.platforms.login.idps import IdpDirectory
from sportello.platforms.login.keys import write_keys
from sportello.sandbox.idp.keys import generate
from sportello.sandbox.idp.metadata import idp_metadata

IDP = "https://idp.example.it/spid"


def _tenant(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"c{i:04d}",
        "name": f"Comune {i}",
        "ipa_code": f"c_{i:04d}",
        "fiscal_code": f"{80000000000 + i:011d}",
        "cadastral_code": "Z999",
        **extra,
    }


# --- HubConfig.tenant ---------------------------------------------------------------------------
def test_tenant_look_up_follows_copies_and_ignores_its_index_in_equality() -> None:
    config = parse_config({"tenants": [_tenant(i) for i in range(1, 301)]})
    assert config.tenant("c0150") is config.tenants[149]
    assert config.tenant("nope") is None
    copy = config.model_copy(update={"tenants": [config.tenants[0]]})
    assert copy.tenant("c0001") is config.tenants[0]
    assert copy.tenant("c0150") is None  # the copy's own tenants, not the original's index
    assert config.tenant("c0150") is config.tenants[149]
    again = parse_config({"tenants": [_tenant(i) for i in range(1, 301)]})
    assert again == config  # one has an index built, the other not: still equal
    assert "_tenant_index" not in config.model_dump()


# --- tenants_dir: files parsed again only when they changed -------------------------------------
def _tenant_file(i: int, name: str) -> str:
    t = _tenant(i)
    return (
        f'id = "{t["id"]}"\nname = "{name}"\nipa_code = "{t["ipa_code"]}"\n'
        f'fiscal_code = "{t["fiscal_code"]}"\ncadastral_code = "Z999"\n'
    )


def test_a_reread_tenants_dir_parses_only_the_files_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tenants.d"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"c{i:04d}.toml").write_text(_tenant_file(i, f"Comune {i}"), encoding="utf-8")
    main_file = tmp_path / "sportello.toml"
    main_file.write_text('tenants_dir = "tenants.d"\n', encoding="utf-8")
    first = load_config(main_file)
    parsed: list[str] = []
    real = toml_files.parse_bytes

    def counting(raw: bytes, replace: Any = None) -> Any:
        document = real(raw, replace)
        parsed.append(document.get("id", "main") if isinstance(document, dict) else "bad")
        return document

    monkeypatch.setattr(toml_files, "parse_bytes", counting)
    second = load_config(main_file)
    assert parsed == ["main"]  # the main file only: no tenant file changed
    assert second.tenant("c0003") is first.tenant("c0003")

    # same size, written at once: the bytes differ, so it is read again (no timestamp trust)
    (folder / "c0003.toml").write_text(_tenant_file(3, "Comune X"), encoding="utf-8")
    (folder / "c0006.toml").write_text(_tenant_file(6, "Comune 6"), encoding="utf-8")
    (folder / "c0001.toml").unlink()
    parsed.clear()
    third = load_config(main_file)
    assert sorted(parsed) == ["c0003", "c0006", "main"]
    assert third.tenant("c0003").name == "Comune X"  # type: ignore[union-attr]
    assert third.tenant("c0001") is None
    assert [t.id for t in third.tenants] == ["c0002", "c0003", "c0004", "c0005", "c0006"]

    # a bad file is refused at every read, the cached good ones notwithstanding
    (folder / "c0004.toml").write_text(_tenant_file(4, "Comune 4") + "bogus = 1\n", "utf-8")
    for _ in range(2):
        with pytest.raises(ConfigError) as refused:
            load_config(main_file)
        assert "c0004.toml" in str(refused.value) and "bogus" in str(refused.value)
    (folder / "c0004.toml").write_text(_tenant_file(4, "Comune 4"), encoding="utf-8")
    assert load_config(main_file).tenant("c0004") is not None


# --- IdP metadata shared by many tenants --------------------------------------------------------
def _idp_file(tmp_path: Path) -> Path:
    path = tmp_path / "idp.xml"
    path.write_bytes(idp_metadata("spid", IDP, generate("IdP di prova")))
    return path


def _spid(keys_dir: Path, idp_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "keys_dir": str(keys_dir),
        "contact_email": "protocollo@comune.example.it",
        "idp_metadata": [str(idp_file)],
        **extra,
    }


async def test_idp_metadata_listed_by_many_tenants_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp_file = _idp_file(tmp_path)
    missing = tmp_path / "missing.xml"
    config = parse_config(
        {
            "tenants": [
                _tenant(i, spid=_spid(tmp_path / "keys", idp_file), cie=None) for i in range(1, 41)
            ]
            + [
                _tenant(
                    99,
                    spid=_spid(tmp_path / "keys", idp_file, idp_metadata=[str(missing)]),
                )
            ]
        }
    )
    parsed: list[bytes] = []
    real = idps_module.parse_idp_metadata

    def counting(xml: bytes) -> Any:
        parsed.append(xml)
        return real(xml)

    monkeypatch.setattr(idps_module, "parse_idp_metadata", counting)
    directory = IdpDirectory(config, registry_cache=tmp_path / "no-registry.xml")
    await directory.load_all()
    assert len(parsed) == 1
    for t in config.tenants[:40]:
        assert [i.entity_id for i in directory.all(t, "spid")] == [IDP]
    assert directory.all(config.tenants[40], "spid") == []  # its only source is missing


# --- a reload serves the changed tenant's new SP metadata ----------------------------------------
async def test_a_reload_serves_the_changed_tenants_new_metadata(
    tmp_path: Path, db_url: str
) -> None:
    keys = generate("Comuni di prova")
    write_keys(tmp_path / "keys", keys.key_pem, keys.cert_pem, rotate=False)
    idp_file = _idp_file(tmp_path)
    folder = tmp_path / "tenants.d"
    folder.mkdir()

    def write(i: int, name: str) -> None:
        text = _tenant_file(i, name) + (
            f'\n[spid]\nkeys_dir = "{tmp_path / "keys"}"\n'
            'contact_email = "protocollo@comune.example.it"\n'
            f'idp_metadata = ["{idp_file}"]\n'
        )
        (folder / f"c{i:04d}.toml").write_text(text, encoding="utf-8")

    for i in range(1, 4):
        write(i, f"Comune Primo {i}")
    main_file = tmp_path / "sportello.toml"
    main_file.write_text(
        f'tenants_dir = "tenants.d"\n\n[server]\npublic_url = "https://hub.example.it"\n\n'
        f'[database]\nurl = "{db_url}"\n\n[outbox]\nworkers = false\n',
        encoding="utf-8",
    )
    app = create_app(load_config(main_file), apply_migrations=True)
    async with TestClient(TestServer(app)) as client:

        async def metadata(tid: str) -> str:
            resp = await client.get(f"/t/{tid}/spid/metadata")
            assert resp.status == 200
            return await resp.text()

        assert "Comune Primo 2" in await metadata("c0002")
        assert "Comune Primo 3" in await metadata("c0003")
        write(2, "Comune Nuovo 2")
        result = await app[RELOADER].reload()
        assert result.changed == ("c0002",)
        body = await metadata("c0002")
        assert "Comune Nuovo 2" in body and "Comune Primo 2" not in body
        assert "Comune Primo 3" in await metadata("c0003")  # the others unchanged


# --- /readyz: costly checks shared and reused, never across a reload ------------------------------
async def test_costly_readiness_checks_are_shared_and_reused_until_the_tenants_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    release = asyncio.Event()

    def slow(app: Any) -> list[readiness.Problem]:
        calls.append(1)
        return [readiness.Problem("c0001", "spid", f"problem {len(calls)}")]

    monkeypatch.setattr(app_module, "_config_problems", slow)
    config = parse_config({"tenants": [_tenant(1)]})
    app = create_app(config)
    checks = app[READINESS]
    # a cheap run is not reused, nor a costly one of a hub with few tenants
    assert (await checks.problems(app))[0].problem == "problem 1"
    monkeypatch.setattr(checks, "COSTLY", 0.0)
    assert (await checks.problems(app))[0].problem == "problem 2"
    # a costly one of many tenants is reused, and concurrent probes share one run
    monkeypatch.setattr(checks, "MANY", 1)
    monkeypatch.setattr(checks, "REUSE", 1e6)
    real_to_thread = asyncio.to_thread

    async def gated(fn: Any, *args: Any) -> Any:
        await release.wait()
        return await real_to_thread(fn, *args)

    monkeypatch.setattr(app_module.asyncio, "to_thread", gated)
    probes = [asyncio.ensure_future(checks.problems(app)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    found = await asyncio.gather(*probes)
    assert [f[0].problem for f in found] == ["problem 3"] * 3
    assert (await checks.problems(app))[0].problem == "problem 3"
    # another configuration (a reload): checked again
    app[CONFIG] = config.model_copy()
    assert (await checks.problems(app))[0].problem == "problem 4"
    assert len(calls) == 4


# --- PDND keys parsed once per content -----------------------------------------------------------
def test_a_pdnd_key_is_parsed_once_per_content() -> None:
    private_pem, _ = generate_key()
    key = load_private_key(private_pem)
    assert load_private_key(private_pem.decode()) is key
    other, _ = generate_key()
    assert load_private_key(other) is not key
    with pytest.raises(InvalidKeyError):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")


def test_many_tenant_files_parsed_on_several_cores_give_the_same_tenants_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tenants.d"
    folder.mkdir()
    for i in range(1, 13):
        (folder / f"c{i:04d}.toml").write_text(_tenant_file(i, f"Comune {i}"), encoding="utf-8")
    main_file = tmp_path / "sportello.toml"
    main_file.write_text('tenants_dir = "tenants.d"\n', encoding="utf-8")
    one_by_one = load_config(main_file)
    config_module._TENANT_FILES.clear()
    monkeypatch.setattr(toml_files, "PARALLEL_FROM", 2)
    monkeypatch.setattr(toml_files, "CHUNK", 5)
    monkeypatch.setattr(toml_files, "_workers", lambda: 2)
    spawned: list[str] = []
    real_pool = toml_files.ProcessPoolExecutor

    def pool(*args: Any, **kwargs: Any) -> Any:
        spawned.append(kwargs["mp_context"].get_start_method())
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(toml_files, "ProcessPoolExecutor", pool)
    parallel = load_config(main_file)
    assert spawned  # the worker processes did parse them
    assert parallel.tenants == one_by_one.tenants
    (folder / "c0007.toml").write_text("id = [", encoding="utf-8")
    (folder / "c0009.toml").write_bytes(b"name = '\xff'")
    config_module._TENANT_FILES.clear()
    with pytest.raises(ConfigError) as refused:
        load_config(main_file)
    assert "c0007.toml: invalid TOML" in str(refused.value)  # the first in name order


# --- secret files: read again only when they changed ---------------------------------------------
def test_a_settled_secret_file_is_read_once_and_a_changed_one_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from sportello import secrets as secrets_module
    from sportello.secrets import read_secret_file

    path = tmp_path / "station.key"
    path.write_text("key-one\n", encoding="utf-8")
    reads: list[Path] = []
    real = Path.read_text

    def counting(self: Path, *args: Any, **kwargs: Any) -> str:
        reads.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    # just written: read every time (two writes could share a timestamp)
    assert read_secret_file(path) == "key-one"
    path.write_text("key-two\n", encoding="utf-8")  # same size, same inode, at once
    assert read_secret_file(path) == "key-two"
    assert len(reads) == 2
    # settled (modified long enough ago): read once
    old = os.stat(path).st_mtime_ns - 10 * 10**9
    os.utime(path, ns=(old, old))
    monkeypatch.setattr(secrets_module, "SETTLED_SECONDS", 0.0)
    for _ in range(3):
        assert read_secret_file(path) == "key-two"
    assert len(reads) == 3
    path.write_text("key-333\n", encoding="utf-8")  # any change moves the stat
    assert read_secret_file(path) == "key-333"
    path.unlink()
    with pytest.raises(OSError):
        read_secret_file(path)
