-- question: Which items can be recommended?
-- grain: one row per item (item_id)
-- source: ref.items
-- columns:
--   item_id     the item
--   category    its category (the tuner's "class")
--   price       price
--   offer_type  discount / bogo / free_gift
-- tests:
--   unique: item_id
--   not_null: item_id, category, price, offer_type
SELECT
    item_id,
    category,
    price,
    offer_type
FROM ref.items
