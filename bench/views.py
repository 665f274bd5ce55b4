"""The floor endpoints: the least a request can cost on this stack, to compare the real endpoints with.

Each is a DRF view with the API's own authentication, permission, parser, renderer and exception
handler, behind the same middleware and gunicorn workers, against the same database: what remains
of a real endpoint's time once this is taken away is the endpoint's own work.

* ``POST /bench/floor/write``: one INSERT into a table of its own (``bench.FloorWrite``); the floor
  of creates.
* ``GET /bench/floor/read/<order id>``: one SELECT of an order by primary key (its id, reference
  and status); the floor of reads. With a session cookie instead of a bearer token it is the
  floor of the portal's pages.

Authentication costs one query (the user by id) with a bearer token, two with a session (the
session, then the user); the floor answers with the same counts as its callers' own way in.
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import NotFound
from orders.models import Order

from .models import FloorWrite


class FloorWriteView(APIView):
    def post(self, request: Request) -> Response:
        row = FloorWrite.objects.create()
        return Response({"id": row.pk}, status=status.HTTP_201_CREATED)


class FloorReadView(APIView):
    def get(self, request: Request, order_id: str) -> Response:
        row = Order.objects.filter(pk=order_id).values("id", "reference", "status").first()
        if row is None:
            raise NotFound("No such order.")
        return Response(row)
