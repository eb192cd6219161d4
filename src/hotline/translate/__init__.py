"""Machine translation engines: a draft to help the translator at the receiving end.

`load_engine(EngineSettings.from_toml(table, data_dir), data_dir)` gives the configured engine, or
None when there is none (a normal state). Every engine follows the link's glossary and labels its
drafts with the exact model that wrote them. See `engine.py` for the interface, `offline.py` and
`libretranslate.py` for the two engines, `glossary.py` for how terms are kept."""

from hotline.translate.engine import (
    Engine,
    EngineKind,
    EngineSettings,
    MachineTranslation,
    TranslationError,
    load_engine,
)
from hotline.translate.glossary import Glossary, GlossaryEntry, GlossaryError

__all__ = [
    "Engine",
    "EngineKind",
    "EngineSettings",
    "Glossary",
    "GlossaryEntry",
    "GlossaryError",
    "MachineTranslation",
    "TranslationError",
    "load_engine",
]
