"""The numbers of the prompt contract (`infra/openapi.yaml`), with nothing to import.

`backend.core.prompts` checks requests against them; the desktop app reads them too (its
max-tokens box) without loading the validator on the way to its first window.
"""

MAX_BODY_BYTES = 256 * 1024
MAX_MESSAGES = 100
MAX_MESSAGE_CHARS = 32_000
MAX_TOTAL_CHARS = 128_000
MAX_TOKENS_LIMIT = 4096
DEFAULT_MAX_TOKENS = 512
TEMPERATURE_MIN = 0.0
TEMPERATURE_MAX = 2.0
DEFAULT_TEMPERATURE = 0.7
