"""Catalog endpoints: admins set products, coupons and promotions; users read products."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderfast import _core
from orderfast.domain.catalog import coupon_document, product_document, promotion_document
from orderfast.domain.customers import restrictions_document
from orderfast.http.paging import page_request, page_response
from orderfast.http.problems import Problem, not_found
from orderfast.http.request import BodyLimits, principal, read_json_document
from orderfast.http.validators import conditional, etag
from orderfast.services.catalog import CatalogService
from orderfast.services.catalog_input import parse_coupon, parse_product, parse_promotion, parse_restrictions

JSON = "application/json"
_PROMOTION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _is_promotion_id(text: str) -> bool:
    return _PROMOTION_ID.fullmatch(text) is not None


def _require_admin(request: Request) -> None:
    if not principal(request).is_admin:
        raise Problem(403, "forbidden", "Forbidden", "only admins may change or inspect this part of the catalog")


def _is_customer_id(value: str) -> bool:
    return 0 < len(value) <= 256 and value.isprintable()


def _written(document: dict[str, Any], created: bool, location: str) -> Response:
    return Response(
        orjson.dumps(document),
        status_code=201 if created else 200,
        headers={"location": location} if created else None,
        media_type=JSON,
    )


class CatalogEndpoints:
    def __init__(self, catalog: CatalogService, limits: BodyLimits) -> None:
        self._catalog = catalog
        self._limits = limits

    def routes(self) -> list[Route]:
        # Each collection before its members: Starlette tries routes in order, first match wins.
        return [
            Route("/v1/products", self.list_products, methods=["GET"]),
            Route("/v1/coupons", self.list_coupons, methods=["GET"]),
            Route("/v1/promotions", self.list_promotions, methods=["GET"]),
            Route("/v1/products/{sku}", self.put_product, methods=["PUT"]),
            Route("/v1/products/{sku}", self.get_product, methods=["GET"]),
            Route("/v1/coupons/{code}", self.put_coupon, methods=["PUT"]),
            Route("/v1/coupons/{code}", self.get_coupon, methods=["GET"]),
            Route("/v1/promotions/{promotion_id}", self.put_promotion, methods=["PUT"]),
            Route("/v1/promotions/{promotion_id}", self.get_promotion, methods=["GET"]),
            Route("/v1/customers/{customer_id}/restrictions", self.put_restrictions, methods=["PUT"]),
            Route("/v1/customers/{customer_id}/restrictions", self.get_restrictions, methods=["GET"]),
        ]

    @staticmethod
    def _key(request: Request, name: str, valid: Callable[[str], bool], what: str) -> str:
        value: str = request.path_params[name]
        if not valid(value):
            raise not_found(what)
        return value

    async def put_product(self, request: Request) -> Response:
        _require_admin(request)
        sku = self._key(request, "sku", _core.is_sku, "product")
        spec = parse_product(sku, await read_json_document(request, self._limits), self._catalog.is_tax_class)
        product, created = await self._catalog.put(spec)
        return _written(product_document(product), created, f"/v1/products/{sku}")

    async def get_product(self, request: Request) -> Response:
        product = await self._catalog.get(self._key(request, "sku", _core.is_sku, "product"))
        if product is None:
            raise not_found("product")
        return conditional(request, etag(product.version, product.stock), orjson.dumps(product_document(product)))

    async def put_coupon(self, request: Request) -> Response:
        _require_admin(request)
        # Coupon codes are case-insensitive: stored and matched upper-cased.
        code = self._key(request, "code", _core.is_coupon_code, "coupon").upper()
        coupon, created = await self._catalog.put_coupon(
            parse_coupon(code, await read_json_document(request, self._limits))
        )
        return _written(coupon_document(coupon), created, f"/v1/coupons/{code}")

    async def get_coupon(self, request: Request) -> Response:
        _require_admin(request)
        coupon = await self._catalog.get_coupon(self._key(request, "code", _core.is_coupon_code, "coupon").upper())
        return self._found(coupon, coupon_document, "coupon")

    async def put_promotion(self, request: Request) -> Response:
        _require_admin(request)
        pid = self._key(request, "promotion_id", _is_promotion_id, "promotion")
        promotion, created = await self._catalog.put_promotion(
            parse_promotion(pid, await read_json_document(request, self._limits))
        )
        return _written(promotion_document(promotion), created, f"/v1/promotions/{pid}")

    async def get_promotion(self, request: Request) -> Response:
        _require_admin(request)
        promotion = await self._catalog.get_promotion(self._key(request, "promotion_id", _is_promotion_id, "promotion"))
        return self._found(promotion, promotion_document, "promotion")

    async def put_restrictions(self, request: Request) -> Response:
        """Order qualification for one customer (the principal's id, the token's ``sub``)."""
        _require_admin(request)
        cid = self._key(request, "customer_id", _is_customer_id, "customer")
        restrictions, created = await self._catalog.put_restrictions(
            parse_restrictions(cid, await read_json_document(request, self._limits))
        )
        return _written(restrictions_document(restrictions), created, request.url.path)

    async def get_restrictions(self, request: Request) -> Response:
        _require_admin(request)
        cid = self._key(request, "customer_id", _is_customer_id, "customer")
        restrictions = await self._catalog.get_restrictions(cid)
        return self._found(restrictions, restrictions_document, "customer's restrictions")

    # Listings: keyset pages by key, as GET /v1/orders pages (one extra row says whether there is
    # another page); each item is the document the single GET answers.

    async def list_products(self, request: Request) -> Response:
        limit, after = page_request(request, _core.is_sku)
        products = await self._catalog.list_products(after, limit + 1)
        return page_response(products, limit, lambda p: p.sku, product_document)

    async def list_coupons(self, request: Request) -> Response:
        _require_admin(request)
        limit, after = page_request(request, _core.is_coupon_code)
        coupons = await self._catalog.list_coupons(after, limit + 1)
        return page_response(coupons, limit, lambda c: c.spec.code, coupon_document)

    async def list_promotions(self, request: Request) -> Response:
        _require_admin(request)
        limit, after = page_request(request, _is_promotion_id)
        promotions = await self._catalog.list_promotions(after, limit + 1)
        return page_response(promotions, limit, lambda p: p.spec.id, promotion_document)

    @staticmethod
    def _found(item: Any, document: Callable[[Any], dict[str, Any]], what: str) -> Response:
        if item is None:
            raise not_found(what)
        return Response(orjson.dumps(document(item)), media_type=JSON)
