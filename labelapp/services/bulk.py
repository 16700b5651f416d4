"""Fast bulk inserts for ingest-sized writes (10^5-10^6 rows).

The ORM's bulk_create builds a Python model object and a parameter list per row, which
caps ingest near 5,000 rows/s. Here rows go straight to the driver: COPY on PostgreSQL,
``executemany`` elsewhere. Table and column names come from model metadata (never from
input) and values are always sent as parameters, so nothing is built from file content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert ``rows`` (tuples ordered like ``fields``) into ``model``'s table.

    Call inside ``transaction.atomic()``: like bulk_create it sends no signals and runs no
    ``save()``; unlike it, it does not return primary keys.
    """
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(model._meta.get_field(f).column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            params = ", ".join(["%s"] * len(fields))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({params})",  # noqa: S608
                list(rows),
            )


def update_rows(
    model: type[models.Model],
    set_fields: Sequence[str],
    where_fields: Sequence[str],
    rows: Iterable[tuple],
) -> None:
    """``UPDATE table SET set_fields WHERE where_fields`` for each row (set values first).

    A row whose WHERE no longer matches (say, a vote arrived since the values were computed)
    is left alone: that is the point of putting more than the key in ``where_fields``.
    """
    qn = connection.ops.quote_name
    col = lambda f: qn(model._meta.get_field(f).column)  # noqa: E731
    sets = ", ".join(f"{col(f)} = %s" for f in set_fields)
    where = " AND ".join(f"{col(f)} = %s" for f in where_fields)
    sql = f"UPDATE {qn(model._meta.db_table)} SET {sets} WHERE {where}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, list(rows))


def set_column(model: type[models.Model], field: str, ids: Sequence[int], values: Sequence) -> None:
    """``model.field = value`` for each (id, value), as one statement on PostgreSQL.

    For catalogue-wide writes (e.g. 2.5 M queue priorities): the values go by COPY into a
    temporary table and one ``UPDATE ... FROM`` applies them, inside the caller's
    transaction, so readers see either all old values or all new ones.
    """
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    col = qn(model._meta.get_field(field).column)
    pk = qn(model._meta.pk.column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE TEMP TABLE _set_column (id bigint, v double precision) ON COMMIT DROP"
            )
            with cursor.cursor.copy("COPY _set_column (id, v) FROM STDIN") as copy:
                for row in zip(ids, values, strict=True):
                    copy.write_row(row)
            cursor.execute(
                f"UPDATE {table} SET {col} = t.v FROM _set_column t "  # noqa: S608
                f"WHERE {table}.{pk} = t.id"
            )
            cursor.execute("DROP TABLE _set_column")
        else:
            cursor.executemany(
                f"UPDATE {table} SET {col} = %s WHERE {pk} = %s",  # noqa: S608
                list(zip(values, ids, strict=True)),
            )
