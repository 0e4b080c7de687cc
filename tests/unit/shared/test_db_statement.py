"""shared.db.Statement: writes written each with its own $1..$n, sent as one statement."""

import pytest

from shared.db import Statement


def test_each_write_keeps_its_own_parameters_renumbered_in_turn():
    st = Statement()
    assert not st
    st.cte("a", "INSERT INTO t (x, y) SELECT * FROM unnest($1::int[], $2::text[]) RETURNING x", [1], ["one"])
    st.cte("b", "UPDATE u SET z = $2 WHERE id = $1 AND $1 > 0", 7, "seven")
    st.select("(SELECT count(*) FROM a) + $1 AS n", 10)
    assert st
    assert st.args == [[1], ["one"], 7, "seven", 10]
    assert st.sql == ("WITH a AS (INSERT INTO t (x, y) SELECT * FROM unnest($1::int[], $2::text[]) RETURNING x),\n"
                      "b AS (UPDATE u SET z = $4 WHERE id = $3 AND $3 > 0)\n"
                      "SELECT (SELECT count(*) FROM a) + $5 AS n")


def test_a_write_whose_parameters_and_arguments_differ_is_refused():
    with pytest.raises(ValueError, match="do not match"):
        Statement().cte("a", "DELETE FROM t WHERE id = $2", 1)  # $2 without an argument
    with pytest.raises(ValueError, match="do not match"):
        Statement().cte("a", "DELETE FROM t WHERE id = $1", 1, 2)  # an argument without its $2


async def test_nothing_added_sends_nothing():
    class Unreachable:
        async def fetchrow(self, *args):
            raise AssertionError("no statement to send")

    assert await Statement().run(Unreachable()) is None
