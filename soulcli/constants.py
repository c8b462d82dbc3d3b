"""The API's fixed values (ratios, qualities, seed range), cheap to import for option parsing."""

IMAGES_PER_REQUEST = 4
ASPECT_RATIOS = ("9:16", "3:4", "2:3", "1:1", "4:3", "16:9", "3:2")
QUALITIES = ("720p", "1080p")
# The provider's newer client code names the same tiers "basic" and "high".
QUALITY_ALIASES = {"basic": "720p", "high": "1080p", "720": "720p", "1080": "1080p"}
SEED_MIN, SEED_MAX = 1, 1_000_000
# Price per request (4 images), in PTC, as the provider's page states it.
PRICE_PTC_TEXT = {"720p": "0.1", "1080p": "0.2"}
# What a request uses when neither the command line nor the config file says.
DEFAULT_STYLE = "GENERAL"
DEFAULT_RATIO = "1:1"
DEFAULT_QUALITY = "720p"
