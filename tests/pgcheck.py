"""Exit 0 when the PostgreSQL used by the tests answers (used by `make test` to warn loudly)."""

import asyncio
import sys

import asyncpg


async def main(url: str) -> int:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception as exc:
        print(f"PostgreSQL check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(
        asyncio.run(
            main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test")
        )
    )
