"""Grid paths: move from S to G through a walled grid with moves U, D, L, R.

The grid is drawn as text: `#` wall, `.` open, `S` start, `G` goal; row 1 is the top. The generator
scatters walls at random and keeps the first layout whose shortest S-to-G path (breadth-first search)
is at least `min_len` moves long; the reference answer is that shortest path. The allowed length
`max_len` is the shortest length plus the grid side, stated in the prompt. The verifier simulates the
moves and accepts ANY path of at most `max_len` moves that never leaves the grid or enters a wall and
ends on G (passing over G earlier is fine as long as the path ends there).

Answer format: a string of the letters U, D, L, R, e.g. `RRDDL` (spaces and commas ignored,
case-insensitive).

Difficulty: 1 = 5x5 grid, 25% walls, path at least 4 moves; 2 = 7x7, 30% walls, at least 7;
3 = 10x10, 33% walls, at least 11.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from ._common import Generated, check_difficulty, check_rng, safe_verify, strip_wrapping

MOVES = {"U": (-1, 0), "D": (1, 0), "L": (0, -1), "R": (0, 1)}
_SPEC = {1: (5, 0.25, 4), 2: (7, 0.30, 7), 3: (10, 0.33, 11)}  # side, wall fraction, min path length
_IGNORED = str.maketrans("", "", " ,;\n\t\r-")
_MAX_TRIES = 10_000
Cell = tuple[int, int]


def shortest_path(grid: list[str], start: Cell, goal: Cell) -> str | None:
    """The moves of one shortest path from start to goal, or None when unreachable."""
    prev: dict[Cell, tuple[Cell, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            moves = []
            while prev[cell] is not None:
                cell, move = prev[cell]
                moves.append(move)
            return "".join(reversed(moves))
        for move, (dr, dc) in MOVES.items():
            nxt = (cell[0] + dr, cell[1] + dc)
            if _open(grid, nxt) and nxt not in prev:
                prev[nxt] = (cell, move)
                queue.append(nxt)
    return None


def _open(grid: list[str], cell: Cell) -> bool:
    r, c = cell
    return 0 <= r < len(grid) and 0 <= c < len(grid[r]) and grid[r][c] != "#"


def _layout(rng: random.Random, side: int, walls: float) -> tuple[list[str], Cell, Cell]:
    rows = ["".join("#" if rng.random() < walls else "." for _ in range(side)) for _ in range(side)]
    cells = [(r, c) for r in range(side) for c in range(side) if rows[r][c] == "."]
    if len(cells) < 2:
        return rows, (0, 0), (0, 0)
    start, goal = rng.sample(cells, 2)
    return rows, start, goal


def _render(grid: list[str], start: Cell, goal: Cell) -> list[str]:
    out = [list(row) for row in grid]
    out[start[0]][start[1]], out[goal[0]][goal[1]] = "S", "G"
    return ["".join(row) for row in out]


def generate(rng: random.Random, difficulty: int) -> Generated:
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    side, walls, min_len = _SPEC[difficulty]
    for _ in range(_MAX_TRIES):
        grid, start, goal = _layout(rng, side, walls)
        path = shortest_path(grid, start, goal) if start != goal else None
        if path is not None and len(path) >= min_len:
            break
    else:  # pragma: no cover
        raise RuntimeError("grid_path: no layout found")
    max_len = len(path) + side
    shown = _render(grid, start, goal)
    prompt = (
        f"Find a path through this {side}x{side} grid from S to G. '#' is a wall, '.' is open floor; "
        "you may step up (U), down (D), left (L) or right (R) onto S, G or open floor, never into a wall "
        f"or off the grid. Use at most {max_len} moves; the path must end on G.\n"
        + "\n".join(shown)
        + "\nInside the answer tags write only the moves as one string of the letters U, D, L, R, for "
        "example <answer>RRDL</answer> (that example is only the format)."
    )
    return prompt, path, {"grid": shown, "start": list(start), "goal": list(goal), "max_len": max_len}


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    grid = list(meta["grid"])
    moves = strip_wrapping(answer_text).translate(_IGNORED).upper()
    if not moves or len(moves) > int(meta["max_len"]) or any(m not in MOVES for m in moves):
        return False
    r, c = meta["start"]
    for move in moves:
        dr, dc = MOVES[move]
        r, c = r + dr, c + dc
        if not _open(grid, (r, c)):
            return False
    return [r, c] == list(meta["goal"])
