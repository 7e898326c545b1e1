"""The batcher keeps each request's failure its own: a poisoned request fails alone."""

from __future__ import annotations

import asyncio

import pytest

from ryot.serve.batcher import Batcher
from ryot.serve.generate import Row, generate
from tests.serve_support import smoke_model

POISON = (13, 13, 13)


@pytest.fixture(scope="module")
def model():
    return smoke_model(seed=2)[1]


def _poisoned_decoder(model, seen: list[int]):
    def decode(rows: list[Row]):
        seen.append(len(rows))
        if any(r.prompt == POISON for r in rows):
            raise RuntimeError("poisoned row")
        return generate(model, rows)

    return decode


def _submit_all(batcher: Batcher, jobs: list[list[Row]]) -> list:
    async def main():
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit(rows) for rows in jobs), return_exceptions=True
            )
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_a_poisoned_request_beside_seven_valid_ones_fails_alone(model):
    seen: list[int] = []
    batcher = Batcher(_poisoned_decoder(model, seen), max_batch=16, max_wait_s=0.5)
    valid = [[Row((i + 1, i + 2), 4)] for i in range(7)]
    # the poisoned request holds two rows: a request fails or succeeds as a whole
    jobs = valid[:3] + [[Row((5,), 4), Row(POISON, 4)]] + valid[3:]
    results = _submit_all(batcher, jobs)
    assert seen[0] == 9, f"the requests were not batched together first: {seen}"
    assert sorted(seen[1:]) == [1] * 7 + [2], "each request is decoded again on its own"
    poisoned = results.pop(3)
    assert isinstance(poisoned, RuntimeError) and "poisoned" in str(poisoned)
    for rows, result in zip(valid, results, strict=True):
        assert not isinstance(result, BaseException), result
        mine = result.batch.rows[result.first]
        assert mine.tokens == generate(model, rows).rows[0].tokens
        assert result.batch_rows == 1


def test_a_failing_lone_request_is_decoded_once(model):
    seen: list[int] = []
    batcher = Batcher(_poisoned_decoder(model, seen), max_batch=16, max_wait_s=0.01)
    (result,) = _submit_all(batcher, [[Row(POISON, 2)]])
    assert isinstance(result, RuntimeError) and seen == [1]
