"""Word sorting: put a list of distinct lowercase English words in alphabetical order.

Alphabetical means plain lexicographic order of the lowercase ASCII words (a prefix sorts before its
extensions: `car` < `card`), which is exactly Python's `sorted` on these words.

Answer format: the sorted words separated by spaces or commas (e.g. `apple, banana, cherry`). The
verifier lower-cases, strips surrounding quotes/full stop and splits on commas and whitespace, then
requires the exact sorted list (every word once, nothing else).

Difficulty: 1 = 5 words; 2 = 8 words; 3 = 12 words drawn from three first letters, so many share a
first letter or a longer prefix (e.g. car, card, care, cargo).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Any

from ._common import Generated, check_difficulty, check_rng, safe_verify, strip_wrapping

WORDS = tuple(
    """
    able about above actor adapt admit adult after again agent agree ahead alarm album alert alive
    allow alone along alpha amber angle angry ankle apple apply april arena argue arise armor array
    arrow badge baker ball balance band bank banner barn basic basin batch beach beam bean bear beard
    beast begin being bench berry birth black blade blame blank blast blend bless blind block blood
    board boat bond bone bonus book boost booth brain brand brave bread break brick bride brief
    cabin cable camel camp camera canal candle candy canvas car carbon card care career cargo carpet
    carry cart case cash castle cat catch cattle cause cave cedar chain chair chalk charm chart cheap
    dance danger dark data date dawn deal dear debate debt decay deck deep deer delay delta dense
    depth desert design desk detail device diary diet digit dinner dish doctor dog doll dolphin door
    eager eagle early earn earth east easy echo edge editor effect egg eight elbow elder elect
    fabric face fact factor fade faint fair faith fall false fame family fan fancy farm fashion fast
    gain galaxy game gap garage garden garlic gas gate gather gauge gear gentle ghost giant gift
    habit hair half hall hammer hand handle happy harbor hard harvest hat hawk head health heart heat
    ice icon idea ideal idle ignore image imitate impact import inch index indoor infant inform ink
    jacket jaguar jam jar jazz jeans jelly jewel job join joke journal joy judge juice jump jungle
    kernel kettle key kick kid kidney kind king kingdom kiss kit kitchen kite kitten knee knife
    label labor lace ladder lady lake lamp land lane language laptop large laser last late laugh
    machine magic magnet maid mail main major make male mall mammal man manage mango manual map
    name napkin narrow nation native nature near neck need needle neither nephew nerve nest net
    oak oasis object ocean odd offer office often oil old olive omit once onion open opera option
    paddle page pair palace palm pan panel panic paper parade parent park part party pass patch path
    quack quality quarter queen query quest quick quiet quilt quit quiz quote
    rabbit race rack radar radio rail rain raise rally ramp ranch random range rapid rare rate raven
    sad saddle safe sail salad salmon salt same sample sand satin sauce save scale scan scene school
    table tablet tail talent talk tall tank tape target task taste tax teach team tear tell tender
    ugly umbrella uncle under undo unfair uniform union unique unit universe unknown unlock until
    vacant vague valid valley value van vapor vast vault velvet vendor venture verb verify version
    wage wagon waist wait walk wall walnut wander want war warm warn wash waste watch water wave
    yard yarn year yellow yes yield yoga young youth zebra zero zone zoo
    """.split()
)
_BY_LETTER: dict[str, list[str]] = defaultdict(list)
for _w in WORDS:
    _BY_LETTER[_w[0]].append(_w)
_COUNT = {1: 5, 2: 8, 3: 12}


def _pick(rng: random.Random, difficulty: int) -> list[str]:
    if difficulty < 3:
        return rng.sample(WORDS, _COUNT[difficulty])
    letters = rng.sample(sorted(k for k, v in _BY_LETTER.items() if len(v) >= 4), 3)
    words = [w for letter in letters for w in rng.sample(_BY_LETTER[letter], 4)]
    rng.shuffle(words)
    return words


def split_words(text: str) -> list[str]:
    return [w for w in re.split(r"[,\s]+", strip_wrapping(text).lower()) if w]


def generate(rng: random.Random, difficulty: int) -> Generated:
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    words = _pick(rng, difficulty)
    prompt = (
        "Sort the following words in alphabetical (dictionary) order, where a word comes before any "
        "longer word it begins with.\n"
        f"Words: {' '.join(words)}\n"
        "Inside the answer tags write the sorted words separated by commas and a space, for example "
        "<answer>apple, banana, cherry</answer> (that example is only the format)."
    )
    return prompt, ", ".join(sorted(words)), {"words": words}


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    words = [str(w).lower() for w in meta["words"]]
    return split_words(answer_text) == sorted(words)
