"""Write a `.env` with fresh secret and encryption keys, unless one exists. Standard library only."""

import base64
import secrets
import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else ".env")
if path.exists():
    print(f"{path} exists; keeping it.")
    sys.exit(0)
key_id = "k" + secrets.token_hex(3)
lines = [
    "# Written by `make run`. Keep it secret: it holds the keys that protect PHI.",
    f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}",
    f"PHI_ENCRYPTION_KEYS={key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}",
    f"PHI_ACTIVE_KEY_ID={key_id}",
    f"PHI_BLIND_INDEX_KEY={base64.b64encode(secrets.token_bytes(32)).decode()}",
    "DJANGO_DEBUG=true",
    "",
]
path.write_text("\n".join(lines))
path.chmod(0o600)
print(f"Wrote {path} with fresh keys.")
