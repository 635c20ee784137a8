"""The item catalog: what a website shows for an item (title, link, image, price, categories)."""
