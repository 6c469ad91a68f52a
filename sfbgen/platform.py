"""Platform facts: what the generated scripts know of Windows and Skype for Business Server.

Every name a script relies on — a path, an installer and its switches, a service, a registry key, a
Windows feature, a supported Windows Server — lives in `data/platform.json` with its source, so that a
reviewer checks each fact once, in one place. Templates read them with `fact(name)`.
"""

from __future__ import annotations

import json
from functools import cache

from .resources import data_file


@cache
def _facts() -> dict:
    return json.loads(data_file("platform.json").read_text(encoding="utf-8"))["facts"]


def fact(name: str):
    """The value of a platform fact (a KeyError names a fact the file does not hold)."""
    return _facts()[name]["value"]


def product(version: str) -> dict:
    """What Microsoft documents of a product version: title, Windows Server versions, pool rules."""
    return fact("products").get(version, fact("products")["2015"])


def products() -> tuple[str, ...]:
    """The product versions sfbgen deploys, in release order (2015, 2019, subscription): the one list,
    the keys of data/platform.json's 'products' fact."""
    return tuple(fact("products"))


def product_title(version: str) -> str:
    """A product version's name as Microsoft writes it (data/platform.json, 'products': title)."""
    return str(fact("products")[version]["title"])


# Each product's prerequisites are their own facts, with their own sources: 2019 and Subscription
# Edition never borrow 2015's (system-requirements.md for 2019 lists more IIS management features).
_FEATURE_FACTS = {"2015": "windows_features", "2019": "windows_features_2019", "subscription": "windows_features_subscription"}


def windows_features(roles: tuple[str, ...], version: str = "2015") -> tuple[str, ...]:
    """The Windows features a computer running `roles` needs under product `version`, each once, in
    the documented order."""
    table = fact(_FEATURE_FACTS[version])
    return tuple(dict.fromkeys(feature for role in roles for feature in table[role]))
