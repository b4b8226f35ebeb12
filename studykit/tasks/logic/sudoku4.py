"""4x4 Sudoku: fill the grid so every row, column and 2x2 box holds 1, 2, 3 and 4 once each.

The generator permutes a solved base grid (digits, rows inside bands, bands, columns inside stacks,
stacks, transpose) and then clears cells in random order, keeping a clue only when removing it would
make the solution non-unique (checked by a backtracking solver that counts up to two solutions). The
verifier does not compare with a stored solution: it checks the rules and that every given clue is
kept, so any valid completion passes (with unique puzzles that is the one solution).

Answer format: the four rows top to bottom, four digits each, rows separated by `/`, e.g.
`1234/3412/2143/4321`; spaces, commas, `|`, `;`, brackets and newlines are ignored.

Difficulty (number of clues): 1 = 10 clues; 2 = 7 clues; 3 = as few as random removal reaches
while staying unique (typically 4-6).
"""

from __future__ import annotations

import random
from typing import Any

from ._common import Generated, check_difficulty, check_rng, safe_verify, strip_wrapping

_BASE = ((1, 2, 3, 4), (3, 4, 1, 2), (2, 1, 4, 3), (4, 3, 2, 1))
_CLUES = {1: 10, 2: 7, 3: 0}
_IGNORED = str.maketrans("", "", " ,|/;[]()\n\t\r")
Grid = list[list[int]]


def _units() -> list[list[tuple[int, int]]]:
    rows = [[(r, c) for c in range(4)] for r in range(4)]
    cols = [[(r, c) for r in range(4)] for c in range(4)]
    boxes = [[(br + r, bc + c) for r in range(2) for c in range(2)] for br in (0, 2) for bc in (0, 2)]
    return rows + cols + boxes


UNITS = _units()


def is_solved(grid: Grid) -> bool:
    return all(sorted(grid[r][c] for r, c in unit) == [1, 2, 3, 4] for unit in UNITS)


def _candidates(grid: Grid, r: int, c: int) -> list[int]:
    used = {grid[r][k] for k in range(4)} | {grid[k][c] for k in range(4)}
    br, bc = r - r % 2, c - c % 2
    used |= {grid[br + i][bc + j] for i in range(2) for j in range(2)}
    return [d for d in range(1, 5) if d not in used]


def count_solutions(grid: Grid, limit: int = 2) -> int:
    """Completions of `grid` (0 = empty), counting at most `limit`."""
    empty = [(r, c) for r in range(4) for c in range(4) if grid[r][c] == 0]
    if not empty:
        return int(is_solved(grid))
    r, c = empty[0]
    found = 0
    for d in _candidates(grid, r, c):
        grid[r][c] = d
        found += count_solutions(grid, limit - found)
        grid[r][c] = 0
        if found >= limit:
            break
    return found


def _solved_grid(rng: random.Random) -> Grid:
    digits = [0, *rng.sample(range(1, 5), 4)]
    order = [i for band in rng.sample((0, 2), 2) for i in rng.sample((band, band + 1), 2)]
    cols = [i for stack in rng.sample((0, 2), 2) for i in rng.sample((stack, stack + 1), 2)]
    grid = [[digits[_BASE[r][c]] for c in cols] for r in order]
    if rng.random() < 0.5:
        grid = [list(row) for row in zip(*grid)]
    return grid


def _render(rows: list[str]) -> str:
    lines = []
    for k, row in enumerate(rows):
        lines.append(f"{row[0]} {row[1]} | {row[2]} {row[3]}")
        if k == 1:
            lines.append("----+----")
    return "\n".join(lines)


def generate(rng: random.Random, difficulty: int) -> Generated:
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    solution = _solved_grid(rng)
    puzzle = [row[:] for row in solution]
    cells = [(r, c) for r in range(4) for c in range(4)]
    rng.shuffle(cells)
    clues = 16
    for r, c in cells:
        if clues <= _CLUES[difficulty]:
            break
        keep, puzzle[r][c] = puzzle[r][c], 0
        if count_solutions([row[:] for row in puzzle]) != 1:
            puzzle[r][c] = keep
        else:
            clues -= 1
    rows = ["".join(str(d) if d else "." for d in row) for row in puzzle]
    prompt = (
        "Solve this 4x4 Sudoku: fill every empty cell (.) with a digit 1-4 so that each row, each column "
        "and each of the four 2x2 boxes contains 1, 2, 3 and 4 exactly once.\n"
        f"{_render(rows)}\n"
        "Inside the answer tags write the completed grid as its four rows from top to bottom, four digits "
        "each, rows separated by '/', for example <answer>1234/3412/2143/4321</answer> (that example is "
        "only the format)."
    )
    answer = "/".join("".join(map(str, row)) for row in solution)
    return prompt, answer, {"givens": rows}


def parse_grid(text: str) -> Grid | None:
    flat = strip_wrapping(text).translate(_IGNORED)
    if len(flat) != 16 or any(ch not in "1234" for ch in flat):
        return None
    return [[int(flat[4 * r + c]) for c in range(4)] for r in range(4)]


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    grid = parse_grid(answer_text)
    givens = meta["givens"]
    if grid is None or len(givens) != 4 or any(len(row) != 4 for row in givens):
        return False
    for r in range(4):
        for c in range(4):
            if givens[r][c] != "." and int(givens[r][c]) != grid[r][c]:
                return False
    return is_solved(grid)
