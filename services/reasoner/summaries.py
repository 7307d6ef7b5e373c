"""A conversation's running summary: what fell out of the history window, kept in a few sentences.

Memory sends, beside the newest ``history_turns`` turns, the turns just before them (``earlier``). Those newer
than the conversation's summary are not covered by it yet: the prompt carries the summary, then those turns,
then the history, so nothing of the thread is missing. Once ``summary_after`` of them have gathered, the
reasoner asks the model, before it answers, to fold them into the summary (one call per ``summary_after``
turns, not per message), records that call as an ``inference.completed`` of its own (so usage and the token
budget count it), and the answer's prompt carries the new summary instead of those turns.

The summary lives in the reasoner's schema, not in an event: it mixes the words of everyone in a group chat,
which no single person's key could seal. Forgetting a person deletes every summary holding their words
(``owners``); retention prunes summaries with the ledger. A replay answers from the summary as it is now (a
recorded answer is reused as it was); a replay or a shadow run never folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agentbus.events import Turn

FOLD_MAX_TOKENS = 400
FOLD_PROMPT = (
    "You keep the running summary of a chat conversation, so that an assistant can follow its thread without "
    "reading every turn. Rewrite the summary so that it also covers the new turns: keep names, decisions, "
    "facts people stated about themselves, open questions and promises; drop small talk. Write at most 150 "
    "words, in the conversation's language, as plain sentences. Answer with the summary only."
)


@dataclass(frozen=True)
class Summary:
    text: str
    covers_until: datetime
    turns: int
    owners: tuple[str, ...] = ()


class SummaryStore(Protocol):
    async def get(self, conversation: str) -> Summary | None: ...

    async def save(self, tenant: str, conversation: str, agent: str, summary: Summary) -> bool:
        """Keep ``summary`` unless the stored one already covers as far (a fold never goes back); True if kept."""
        ...


def uncovered(summary: Summary | None, earlier: Sequence[Turn]) -> list[Turn]:
    """The turns before the history window that the summary does not cover yet, oldest first."""
    return [t for t in earlier if summary is None or t.at > summary.covers_until]


def fold_messages(summary: Summary | None, turns: Sequence[Turn]) -> list[dict[str, Any]]:
    said = "\n".join(f"{'assistant' if t.role == 'assistant' else (t.sender or 'user')}: {t.text}" for t in turns)
    so_far = summary.text if summary is not None else "(none yet)"
    return [{"role": "system", "content": FOLD_PROMPT},
            {"role": "user", "content": f"Summary so far:\n{so_far}\n\nNew turns:\n{said}"}]


def folded(summary: Summary | None, turns: Sequence[Turn], text: str) -> Summary:
    owners = set(summary.owners if summary is not None else ()) | {t.owner for t in turns if t.owner}
    return Summary(text=text.strip(), covers_until=max(t.at for t in turns),
                   turns=(summary.turns if summary is not None else 0) + len(turns), owners=tuple(sorted(owners)))
