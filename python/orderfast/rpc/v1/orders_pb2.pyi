from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Item(_message.Message):
    __slots__ = ("sku", "quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class CreateOrderRequest(_message.Message):
    __slots__ = ("idempotency_key", "currency", "items", "coupon", "expected_total")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    COUPON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    currency: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    coupon: str
    expected_total: str
    def __init__(self, idempotency_key: _Optional[str] = ..., currency: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., coupon: _Optional[str] = ..., expected_total: _Optional[str] = ...) -> None: ...

class QuoteRequest(_message.Message):
    __slots__ = ("currency", "items", "coupon", "expected_total")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    COUPON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    currency: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    coupon: str
    expected_total: str
    def __init__(self, currency: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., coupon: _Optional[str] = ..., expected_total: _Optional[str] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("limit", "cursor")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    limit: int
    cursor: str
    def __init__(self, limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class Line(_message.Message):
    __slots__ = ("sku", "name", "quantity", "unit_price", "discount", "tax", "tax_rate", "total")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FIELD_NUMBER: _ClassVar[int]
    TAX_FIELD_NUMBER: _ClassVar[int]
    TAX_RATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    sku: str
    name: str
    quantity: int
    unit_price: str
    discount: str
    tax: str
    tax_rate: str
    total: str
    def __init__(self, sku: _Optional[str] = ..., name: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[str] = ..., discount: _Optional[str] = ..., tax: _Optional[str] = ..., tax_rate: _Optional[str] = ..., total: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("id", "status", "customer_id", "currency", "lines", "subtotal", "discount", "tax", "total", "coupon", "prices_include_tax", "cancel_reason", "refunded", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SUBTOTAL_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FIELD_NUMBER: _ClassVar[int]
    TAX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COUPON_FIELD_NUMBER: _ClassVar[int]
    PRICES_INCLUDE_TAX_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    customer_id: str
    currency: str
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    subtotal: str
    discount: str
    tax: str
    total: str
    coupon: str
    prices_include_tax: bool
    cancel_reason: str
    refunded: str
    created_at: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., customer_id: _Optional[str] = ..., currency: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ..., subtotal: _Optional[str] = ..., discount: _Optional[str] = ..., tax: _Optional[str] = ..., total: _Optional[str] = ..., coupon: _Optional[str] = ..., prices_include_tax: _Optional[bool] = ..., cancel_reason: _Optional[str] = ..., refunded: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Order]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("currency", "lines", "subtotal", "discount", "tax", "total", "coupon", "prices_include_tax")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SUBTOTAL_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FIELD_NUMBER: _ClassVar[int]
    TAX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COUPON_FIELD_NUMBER: _ClassVar[int]
    PRICES_INCLUDE_TAX_FIELD_NUMBER: _ClassVar[int]
    currency: str
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    subtotal: str
    discount: str
    tax: str
    total: str
    coupon: str
    prices_include_tax: bool
    def __init__(self, currency: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ..., subtotal: _Optional[str] = ..., discount: _Optional[str] = ..., tax: _Optional[str] = ..., total: _Optional[str] = ..., coupon: _Optional[str] = ..., prices_include_tax: _Optional[bool] = ...) -> None: ...
