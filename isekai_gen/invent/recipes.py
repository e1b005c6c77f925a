"""Fusion recipes, in the spirit of ISEKAI's concepts, and the template writer of their texts.

Every invented concept fuses a *partner* (a real category: the look-alike it is paired with in
episodes) with a *modifier* of another kind:

- ``made_of`` — a creature or thing made of a material, plant or food (the paper's cactihog:
  a hedgehog made of cactus; mushroom house): partner an animal, object, vehicle or building,
  modifier a plant, food or material.
- ``shaped_like`` — an object with an animal's shape (the paper's octopus vacuum cleaner):
  partner an object, vehicle or building, modifier an animal.
- ``impossible_attribute`` — a real thing with an attribute it could never have (the paper's
  fire snowman, transparent deer, suspended rock): partner any category but a material, modifier
  an impossible attribute of the pool.

The defining features of an invented concept are the partner's traits (its shape) and the
modifier's traits (what it is made of or has); every prompt states all of them. The real partner's
prompts state its own traits and its negative prompt names the modifier's, so the two stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from .pool import Attribute, Category


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


@dataclass(frozen=True)
class Recipe:
    id: str
    partner_kinds: tuple[str, ...]
    modifier_kinds: tuple[str, ...]     # ("attribute",): the pool's attributes

    def subject(self, partner: Category, modifier) -> str:
        if self.id == "made_of":
            return f"{_a(partner.name)} made entirely of {modifier.name}"
        if self.id == "shaped_like":
            return f"{_a(partner.name)} shaped like {_a(modifier.name)}"
        return f"{_a(partner.name)} {modifier.phrase}"

    def plain_name(self, partner: Category, modifier) -> str:
        if self.id == "impossible_attribute":
            return f"{modifier.id} {partner.name}"
        return f"{modifier.name} {partner.name}"


RECIPES = (
    Recipe("made_of", ("animal", "object", "vehicle", "building"), ("plant", "food", "material")),
    Recipe("shaped_like", ("object", "vehicle", "building"), ("animal",)),
    Recipe("impossible_attribute", ("animal", "plant", "food", "object", "vehicle", "building"), ("attribute",)),
)

GENERIC_NEGATIVE = "blurry, low quality, jpeg artifacts, deformed, text, watermark, signature, frame"
# (style, setting, light): eight variants of medium, viewpoint, place and lighting.
VARIANTS = (
    ("photorealistic photo of", "in a natural setting", "soft daylight"),
    ("full-body studio photo of", "on a seamless grey backdrop", "soft key light"),
    ("low-angle cinematic film still of", "in a misty landscape", "golden hour backlight"),
    ("digital painting of", "against a dark background", "dramatic rim lighting"),
    ("close-up macro photo of", "with a shallow depth of field", "diffuse window light"),
    ("3D render of", "in a bright minimal room", "even studio lighting"),
    ("overhead documentary photo of", "outdoors on a cloudy day", "flat overcast light"),
    ("watercolor illustration of", "on textured paper", "warm pastel light"),
    ("wide-angle travel photo of", "at night in a city", "neon glow"),
    ("vintage film photo of", "in a quiet garden", "late afternoon sun"),
)
MIN_VARIANTS = 8


def defining_features(partner: Category, modifier) -> tuple[str, ...]:
    return (*partner.traits, *modifier.traits)


def template_texts(recipe: Recipe, partner: Category, modifier, label: str) -> dict:
    """Description, prompt variants and negative prompt of the invented concept and of its partner."""
    subject = recipe.subject(partner, modifier)
    features = defining_features(partner, modifier)
    modifier_word = modifier.phrase if isinstance(modifier, Attribute) else modifier.name
    isekai = {
        "description": (f"An invented concept: {subject}. It keeps the {partner.name}'s "
                        f"{', '.join(partner.traits)}, and shows {', '.join(modifier.traits)}. Without the "
                        f"{modifier.name} it is just {_a(partner.name)}; without the {partner.name}'s form it "
                        f"is not {_a(partner.name)} at all."),
        "prompts": [f"{style} {subject}, {', '.join(features)}, {setting}, {light}" for style, setting, light in VARIANTS],
        "negative_prompt": f"ordinary {partner.name}, plain {modifier.name}, {GENERIC_NEGATIVE}",
    }
    real = {
        "description": (f"A real {partner.name}: {', '.join(partner.traits)}. Unlike the {label}, it is not "
                        f"{modifier_word if isinstance(modifier, Attribute) else 'made of or shaped like ' + modifier.name}; "
                        f"it shows none of {', '.join(modifier.traits)}."),
        "prompts": [f"{style} a real {partner.name}, {', '.join(partner.traits)}, {setting}, {light}"
                    for style, setting, light in VARIANTS],
        "negative_prompt": f"{modifier.name}, {', '.join(modifier.traits)}, {GENERIC_NEGATIVE}",
    }
    return {"isekai": isekai, "real": real}
